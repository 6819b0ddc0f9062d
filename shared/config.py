"""Settings, read from the environment (prefix-free names, as a deployment sets them).

With neither `DATABASE_URL` nor `REDIS_URL` set, the process starts its own embedded
PostgreSQL and Valkey inside `DATA_DIR` (see `shared.embedded`); that is the default a new user
gets. Production sets both URLs and the OpenID Connect issuer of the city.
"""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    # Reports (settlement's KPI report, statements) read through a session of their own that may
    # point at a replica; unset, the primary. Its sessions are read-only either way.
    database_read_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".chiikipay")

    # Authentication. The built-in dev issuer signs tokens with a key kept in the data folder;
    # production turns it off (DEV_ISSUER_ENABLED=false) and points at the city's OpenID Connect
    # provider (README "Sign-in with the city's ID"). Tokens are RS256 either way.
    #
    # JWT_ISSUER: the provider's issuer identifier, exactly as its tokens' `iss` and its discovery
    # document's `issuer` spell it (e.g. https://id.city.example/realms/residents).
    jwt_issuer: str = "chiikipay-dev"
    # JWT_AUDIENCE: the client id chiikipay is registered under at the provider; a token whose
    # `aud` does not name it was issued for another service and is refused.
    jwt_audience: str = "chiikipay"
    # The provider's keys, one of: JWT_JWKS_URL, its JWK set's URL; JWT_DISCOVERY=true, the JWK
    # set's URL read from <JWT_ISSUER>/.well-known/openid-configuration (whose `issuer` must equal
    # JWT_ISSUER); or JWT_PUBLIC_KEY, one PEM public key (no rotation without a restart). A JWK
    # set is fetched on first use and every 300 s; a token naming a key id not in it prompts one
    # fetch at once (the provider rotated its key), at most one per JWT_JWKS_REFETCH_SECONDS.
    jwt_jwks_url: str | None = None
    jwt_discovery: bool = False
    jwt_jwks_refetch_seconds: float = 30
    jwt_public_key: str | None = None
    # The claims mapped to a chiikipay principal, by their name in the provider's tokens:
    # the role (resident, merchant_staff, operator …), the region's code, a resident's opt-in to
    # share payment results with the city's data platform (a JSON boolean) and their area (a code
    # the region publishes: a district). The subject is always `sub`: it is the resident, and
    # their wallet is created on their first call (services/wallet/directory).
    jwt_role_claim: str = "role"
    jwt_region_claim: str = "region"
    jwt_data_sharing_claim: str = "data_sharing"
    jwt_area_claim: str = "area"
    # A city's provider issues its residents' tokens without chiikipay's role or region: with
    # these set, a token that carries no role claim is a resident's, and one without a region
    # claim is of this region. Only "resident" may be defaulted: staff roles must be asserted.
    jwt_default_role: Literal["resident"] | None = None
    jwt_default_region: str | None = None
    dev_issuer_enabled: bool = True
    dev_token_ttl_seconds: int = 3600

    # Transit e-tickets' rotating codes are signed with this Ed25519 private key (PEM); unset, a
    # key kept in the data folder (created on first start, as the dev issuer's). After a rotation
    # the previous key's public half (PEM) is still listed for validators until their codes are stale.
    transit_signing_key: str | None = Field(default=None, repr=False)
    transit_previous_public_key: str | None = None

    # Bank top-up webhook: HMAC-SHA256 over "<timestamp>.<body>" with this shared secret.
    bank_webhook_secret: str = Field(default="dev-bank-webhook-secret", repr=False)
    bank_webhook_tolerance_seconds: int = 300

    # Outgoing webhooks (services/platform/outbox): an event whose delivery failed is sent again
    # after base × 2^(attempts − 1) seconds, at most the cap, until the last attempt: with these,
    # for almost three hours, so a partner down for an hour gets every event when it is back.
    webhook_max_attempts: int = 20
    webhook_backoff_seconds: float = 2
    webhook_backoff_cap_seconds: float = 900
    webhook_timeout_seconds: float = 10
    # How often the server's platform worker delivers due events and sweeps expired checkouts
    # (services/platform/jobs.py; on with `jobs_scheduler`). By hand: `chiikipay webhooks deliver`.
    platform_every_seconds: float = 2
    # The link a partner's checkout page opens in the resident's app (the checkout id appended).
    checkout_link_base: str = "chiikipay://checkout/"

    # The city's data platform (services/platform/sharing, README "Payment results to the data
    # platform"). DATA_PLATFORM_URL: where the events are POSTed through the outbox (unset: none
    # are written, and payments pay nothing for it); DATA_PLATFORM_SECRET: their HMAC signing
    # secret, shared with the platform; DATA_PLATFORM_PSEUDONYM_KEY: the key of the residents'
    # pseudonyms (HMAC-SHA256 of region and subject), kept only here: changing it gives every
    # resident a new pseudonym, so set it once; DATA_PLATFORM_MIN_PAYMENTS: a sector with fewer
    # payments in a day is left out of that day's aggregate.
    data_platform_url: str | None = None
    data_platform_secret: str = Field(default="dev-data-platform-secret", repr=False)
    data_platform_pseudonym_key: str = Field(default="dev-data-platform-pseudonym-key", repr=False)
    data_platform_min_payments: int = Field(default=3, ge=1)

    # Region defaults, copied into a region when it is created; operators change them per region.
    default_balance_cap: int = 100_000
    default_topup_min: int = 1_000
    default_topup_max: int = 50_000
    default_topup_step: int = 1_000
    default_refund_window_days: int = 0  # same (Tokyo) day only
    default_payment_request_minutes: int = 5
    cpm_token_ttl_seconds: int = 60  # a resident's one-time code at the register
    default_card_daily_limit: int = 10_000  # what a printed resident card may pay per (Tokyo) day

    # The server runs the wallet's jobs itself (services/wallet/jobs.py): every this many seconds
    # the day's expiry of every region (shortly after midnight Asia/Tokyo) and the release of
    # unpaid lottery wins. Off: only `chiikipay jobs …` runs them.
    jobs_scheduler: bool = True
    jobs_every_seconds: float = 300
    # On shutdown, how long background work (a CSV grant upload) may take to finish.
    shutdown_grace_seconds: float = 30

    max_body_bytes: int = 64 * 1024
    # File uploads (endpoints marked `shared.observability.large_body`, e.g. a CSV of up to
    # 100,000 point grants) may be this large; every other request keeps `max_body_bytes`.
    max_upload_bytes: int = 32 * 1024 * 1024
    max_grant_rows: int = 100_000
    # Database connections per server process (fixed; a request waits for a free one). Small on
    # purpose: where the app and PostgreSQL share a few cores, more connections only queue inside
    # PostgreSQL, and each new one first plans the hot functions again (bench/RESULTS.md: the
    # premium rush's p99 went from 710 to 134 ms when 32 became 8).
    db_pool_size: int = 8
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        return self.database_url is None or self.redis_url is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
