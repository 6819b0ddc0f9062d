"""Problems of partner services, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class PartnerNotFound(NotFound):
    slug, title = "partner-not-found", "No such partner service"


class PartnerNameTaken(Conflict):
    slug, title = "partner-name-taken", "The region already has a partner service of that name"


class PartnerRevoked(Conflict):
    slug, title = "partner-revoked", "The partner service is revoked"


class PartnerMerchantHasNoStore(Conflict):
    slug, title = "partner-merchant-has-no-store", "The partner's merchant has no store to take its payments at"


class CallbackUrlInvalid(Unprocessable):
    slug, title = "callback-url-invalid", "A callback URL must be https (http only on this machine), without credentials or fragment"


class UrlNotAllowed(Unprocessable):
    slug, title = "url-not-allowed", "The URL is not on the partner service's list of allowed callback URLs"
