"""Problems of segments, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class SegmentNotFound(NotFound):
    slug, title = "segment-not-found", "No such segment"


class SegmentNameTaken(Conflict):
    slug, title = "segment-name-taken", "The region already has a segment of this name"


class SegmentEmpty(Conflict):
    slug, title = "segment-empty", "No resident is in this audience now"


class ConsentRequired(Unprocessable):
    slug, title = "consent-required", "Attributes are kept only with the resident's consent to segments"
