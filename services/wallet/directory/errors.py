"""Problems of the directory, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class RegionNotFound(NotFound):
    slug, title = "region-not-found", "No such region"


class RegionCodeTaken(Conflict):
    slug, title = "region-code-taken", "A region with this code is already hosted here"


class InvalidRegionName(Unprocessable):
    slug, title = "invalid-region-name", "The region's name cannot be carried by its QR codes"


class NameNotPrintable(Unprocessable):
    slug, title = "name-not-printable", "A name the shop's QR code shows holds characters a code cannot carry"


class WalletNotFound(NotFound):
    slug, title = "wallet-not-found", "No such wallet"


class MerchantNotFound(NotFound):
    slug, title = "merchant-not-found", "No such merchant"


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "No such API key"


class MerchantNameTaken(Conflict):
    slug, title = "merchant-name-taken", "A merchant with this name already exists in the region"


class InvalidRegistrationNumber(Unprocessable):
    slug, title = "invalid-registration-number", "Not a valid qualified-invoice registration number"


class InvalidRegionSettings(Unprocessable):
    slug, title = "invalid-region-settings", "The region settings are inconsistent"


class UnknownMerchantClass(Unprocessable):
    slug, title = "unknown-merchant-class", "No such merchant class in the region"



class MerchantClassTaken(Unprocessable):
    # The type it has had since merchant classes were part of campaigns: a client may match on it.
    slug, title = "invalid-campaign", "The region already has a merchant class with this code"
