"""Segments for coupon distribution (issue 13, item 6), in the coupons schema.

- `resident_profiles`: a resident's consents (`segments`: their attributes may be used for
  offers; `personalised`: their own activity may be) and the attributes they shared: age band,
  area code, interests, usual transport mode. The database refuses an attribute without the
  `segments` consent and a row without any consent, so an opt-out deletes what it must.
- `segments` and `segment_versions`: the operator's named audiences; new filters are a new
  version, never an edit (the database refuses to change one), so a distribution can name the version it was sent for.
- `announcements`: a plain message sent to a segment at a version, and how many it reached.

Region ids are the wallet's, without foreign keys: coupons never touch the wallet's tables.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-02
"""
from alembic import op

revision = "0018"
down_revision = "0015"
branch_labels = None
depends_on = None

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS coupons",
    """CREATE TABLE coupons.resident_profiles (
        region_id uuid NOT NULL,
        subject text NOT NULL,
        segments_consent boolean NOT NULL,
        personalised_consent boolean NOT NULL,
        age_band text,
        area text,
        interests text[] NOT NULL,
        transport_mode text,
        updated_at timestamptz NOT NULL,
        CONSTRAINT pk_resident_profiles PRIMARY KEY (region_id, subject),
        CONSTRAINT ck_resident_profiles_some_consent CHECK (segments_consent OR personalised_consent),
        CONSTRAINT ck_resident_profiles_attributes_need_consent CHECK (segments_consent OR (age_band IS NULL
            AND area IS NULL AND transport_mode IS NULL AND cardinality(interests) = 0)),
        CONSTRAINT ck_resident_profiles_age_band CHECK (age_band IS NULL OR age_band IN ('under_20', '20s', '30s',
            '40s', '50s', '60s', '70_plus')),
        CONSTRAINT ck_resident_profiles_transport_mode CHECK (transport_mode IS NULL OR transport_mode IN ('car',
            'bus', 'bicycle', 'walk', 'train', 'other')),
        CONSTRAINT ck_resident_profiles_interests CHECK (interests <@ ARRAY['food', 'shopping', 'tourism', 'culture',
            'health', 'sports', 'nature']::text[]),
        CONSTRAINT ck_resident_profiles_area_code CHECK (area IS NULL OR area ~ '^[a-z0-9][a-z0-9_-]{0,31}$')
    )""",
    """CREATE TABLE coupons.segments (
        id uuid CONSTRAINT pk_segments PRIMARY KEY,
        region_id uuid NOT NULL,
        name text NOT NULL,
        version integer NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        archived_at timestamptz
    )""",
    "CREATE UNIQUE INDEX uq_segments_region_id_name ON coupons.segments (region_id, name) WHERE archived_at IS NULL",
    "CREATE INDEX ix_segments_region_id_id ON coupons.segments (region_id, id)",
    """CREATE TABLE coupons.segment_versions (
        segment_id uuid NOT NULL CONSTRAINT fk_segment_versions_segment_id_segments REFERENCES coupons.segments (id),
        version integer NOT NULL,
        filters jsonb NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT pk_segment_versions PRIMARY KEY (segment_id, version),
        CONSTRAINT ck_segment_versions_version_positive CHECK (version >= 1)
    )""",
    # A version is what a distribution was sent for: never changed, whatever code runs.
    """CREATE TRIGGER coupons_segment_versions_append_only BEFORE UPDATE OR DELETE ON coupons.segment_versions
        FOR EACH ROW EXECUTE FUNCTION platform.refuse_change()""",
    """CREATE TABLE coupons.announcements (
        id uuid CONSTRAINT pk_announcements PRIMARY KEY,
        region_id uuid NOT NULL,
        segment_id uuid NOT NULL,
        segment_version integer NOT NULL,
        title text NOT NULL,
        body text NOT NULL,
        recipients integer NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT fk_announcements_segment_version FOREIGN KEY (segment_id, segment_version)
            REFERENCES coupons.segment_versions (segment_id, version),
        CONSTRAINT ck_announcements_recipients_positive CHECK (recipients > 0)
    )""",
    "CREATE INDEX ix_announcements_segment_id_id ON coupons.announcements (segment_id, id)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("announcements", "segment_versions", "segments", "resident_profiles"):
        op.execute(f"DROP TABLE coupons.{table}")
