"""Campaign problems, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Problem, Unprocessable


class CampaignNotFound(NotFound):
    slug, title = "campaign-not-found", "No such campaign"


class CampaignNameTaken(Conflict):
    slug, title = "campaign-name-taken", "A campaign with this name already exists in the region"


class CampaignClosed(Conflict):
    slug, title = "campaign-closed", "The campaign is closed"


class CampaignKindMismatch(Conflict):
    slug, title = "campaign-kind-mismatch", "The campaign is not of the kind this needs"


class InvalidCampaign(Unprocessable):
    slug, title = "invalid-campaign", "The campaign's settings do not fit together"


class BudgetExhausted(Problem):
    status, slug, title = 402, "budget-exhausted", "The campaign budget is too low"
