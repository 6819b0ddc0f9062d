"""Grant problems, each with its HTTP status and stable problem type. (Budget exhausted, closed
campaign and wrong campaign kind are the campaigns' own problems.)"""

from shared.errors import Conflict, NotFound, Problem, Unprocessable


class GrantNotFound(NotFound):
    slug, title = "grant-not-found", "No such grant"


class UploadNotFound(NotFound):
    slug, title = "grant-upload-not-found", "No such grant upload"


class PartnerKeyNotFound(NotFound):
    slug, title = "partner-key-not-found", "No such partner key"


class UnknownResident(NotFound):
    slug, title = "unknown-resident", "No resident has this wallet in the region"


class RowKeyReused(Conflict):
    slug, title = "row-key-reused", "This row key was already granted with different content"


class ActivityDateInFuture(Unprocessable):
    slug, title = "activity-date-in-future", "The activity date is after today (Asia/Tokyo)"


class CampaignWindowOver(Conflict):
    slug, title = "campaign-window-over", "The campaign's points have already expired"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "The upload must be text/csv"
