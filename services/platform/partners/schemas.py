"""Request and response bodies of partner services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from services.platform.partners.models import PartnerStatus
from shared.schemas import Schema, Text100

CallbackUrl = Annotated[str, StringConstraints(min_length=8, max_length=500, pattern=r"^https?://[!-~]+$")]


CallbackUrls = Annotated[list[CallbackUrl], Field(
    min_length=1, max_length=20,
    description="where its webhooks and return links may point: https (http only on 127.0.0.1/localhost); a "
                "URL is allowed at or below one of these paths, on the same scheme, host and port",
)]


class PartnerCreate(Schema):
    name: Text100 = Field(description="the partner service as residents see it, e.g. 会津オンライン診療")
    merchant_id: uuid.UUID = Field(description="the merchant its checkouts pay and settlement pays out (it needs a store)")
    callback_urls: CallbackUrls


class CallbackUrlsIn(Schema):
    callback_urls: CallbackUrls


class PartnerOut(Schema):
    id: uuid.UUID
    name: str
    merchant_id: uuid.UUID
    callback_urls: list[str]
    status: PartnerStatus
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class PartnerCreated(PartnerOut):
    api_key: str = Field(description="its X-API-Key, shown this once")
    signing_secret: str = Field(description="the secret its webhooks are signed with, shown this once")


class PartnerServiceKeyOut(Schema):
    partner_id: uuid.UUID
    api_key: str = Field(description="the new X-API-Key, shown this once; every earlier key stopped working")


class SigningSecretOut(Schema):
    partner_id: uuid.UUID
    signing_secret: str = Field(description="the new signing secret, shown this once; webhooks are signed with it from now on")
