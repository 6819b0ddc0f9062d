"""Segments' surface for the rest of coupons (distributions of coupons and bundles, built later):
who is in an audience, and one wallet notice per resident in it. Nothing else of this package is
meant to be imported from outside it.

Every function works in the caller's session and never commits, takes the region by its code
(as tokens carry it) and, to write, an explicit `Actor`; who may call is the caller's check.

Audiences
    `members(session, region=, segment_id=, at=, version=None) -> list[str]`: the subjects of the
    residents (active wallet) the segment matches at `at`, by its version in force or the given
    `version` (a distribution that recorded the version it was sent for). Residents without the
    `segments` consent never match an attribute filter, those without `personalised` never an
    activity filter; an opt-out takes effect with its commit. Refuses segment-not-found (also an
    archived segment or an unknown version).
    `is_member(session, region=, segment_id=, subject=, at=) -> bool`: whether that one resident
    is in the segment's version in force at `at`, by the same rules, reading only their own
    profile and activity (a claim's live check); False for a segment archived or unknown.
    `everyone(session, region=) -> list[str]`: every resident with an active wallet, no consent
    needed ("all residents": the audience a resident without any opt-in is in).
    `segment(session, region=, segment_id=, version=None) -> SegmentView`: the segment, its
    version number and filters (to record which version a distribution used).

Notices
    `notify(session, clock, region=, actor=, audience=, kind=, payload=, version=None) -> int`:
    one wallet notice of `kind` with `payload` per resident in `audience` (a segment's id, or
    `ALL`) now; how many were made. Refuses segment-empty when no one is in it (nothing written),
    segment-not-found.
"""

from services.coupons.segments.errors import SegmentEmpty, SegmentNotFound
from services.coupons.segments.service import (
    ALL,
    Audience,
    SegmentView,
    everyone,
    is_member,
    members,
    notify,
    segment,
)

__all__ = [
    "ALL", "Audience", "SegmentEmpty", "SegmentNotFound", "SegmentView", "everyone", "is_member", "members", "notify",
    "segment",
]
