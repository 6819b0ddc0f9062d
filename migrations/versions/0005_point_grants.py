"""Point grants: single and bulk (CSV) grants of campaign points for activities; partner API keys scoped to a campaign.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
import re

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CATEGORIES = (
    "health_event", "health_checkup", "walking", "environmental_activity", "recycling", "volunteering",
    "community_event", "disaster_drill",
)

TABLES = r"""
-- A partner system's key (a health-event organiser, a volunteer centre …): it may grant points
-- in its one campaign and read its own grants, nothing else. Only a SHA-256 of the secret is kept.
CREATE TABLE wallet.partner_keys (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
    name text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX ix_partner_keys_campaign ON wallet.partner_keys (campaign_id, id);

-- A CSV upload of grants and its progress. The file is kept beside it (what was asked, for the
-- audit, and so that an interrupted upload can be processed again from the start).
CREATE TABLE wallet.grant_uploads (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
    status text NOT NULL CHECK (status IN ('validating', 'granting', 'done', 'rejected', 'failed')),
    filename text,
    content_sha256 text NOT NULL,
    size_bytes bigint NOT NULL,
    total_rows integer NOT NULL DEFAULT 0,
    validated_rows integer NOT NULL DEFAULT 0,
    granted_rows integer NOT NULL DEFAULT 0,
    skipped_rows integer NOT NULL DEFAULT 0,
    points bigint NOT NULL DEFAULT 0,
    error_count integer NOT NULL DEFAULT 0,
    detail text,
    partner_key_id uuid REFERENCES wallet.partner_keys (id),
    created_by text NOT NULL,
    created_role text NOT NULL,
    request_id text,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    CHECK (validated_rows <= total_rows AND granted_rows + skipped_rows <= total_rows)
);
CREATE INDEX ix_grant_uploads_campaign ON wallet.grant_uploads (campaign_id, id);

CREATE TABLE wallet.grant_upload_files (
    upload_id uuid PRIMARY KEY REFERENCES wallet.grant_uploads (id),
    content bytea NOT NULL
);

-- Why an upload was rejected: one row per problem, with the file's line (NULL: the whole file).
CREATE TABLE wallet.grant_upload_errors (
    id uuid PRIMARY KEY,
    upload_id uuid NOT NULL REFERENCES wallet.grant_uploads (id),
    line integer,
    row_key text,
    field text,
    code text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX ix_grant_upload_errors_upload ON wallet.grant_upload_errors (upload_id, id);

-- One grant of points to one resident for one activity. The row key is the grant's own
-- idempotency key within its campaign: the same key never grants twice.
CREATE TABLE wallet.grants (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL,
    campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
    row_key text NOT NULL,
    wallet_id uuid NOT NULL,
    account_id uuid NOT NULL REFERENCES wallet.accounts (id),
    category text NOT NULL CHECK (category IN ({categories})),
    event_id text NOT NULL,
    activity_date date NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    memo text,
    journal_id uuid NOT NULL REFERENCES wallet.journals (id),
    lot_id uuid NOT NULL REFERENCES wallet.lots (id),
    upload_id uuid REFERENCES wallet.grant_uploads (id),
    partner_key_id uuid REFERENCES wallet.partner_keys (id),
    actor text NOT NULL,
    fiscal_year smallint NOT NULL,
    created_at timestamptz NOT NULL,
    CONSTRAINT uq_grants_row_key UNIQUE (region_id, campaign_id, row_key)
);
CREATE INDEX ix_grants_campaign ON wallet.grants (campaign_id, id);
CREATE INDEX ix_grants_region_fiscal_year ON wallet.grants (region_id, fiscal_year, category);
CREATE INDEX ix_grants_wallet ON wallet.grants (wallet_id, id);
CREATE TRIGGER wallet_grants_append_only BEFORE UPDATE OR DELETE ON wallet.grants
    FOR EACH ROW EXECUTE FUNCTION platform.refuse_change();
"""


def _each_statement(sql: str) -> None:
    for statement in re.split(r";\s*\n", sql):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _each_statement(TABLES.replace("{categories}", ", ".join(f"'{c}'" for c in CATEGORIES)))


def downgrade() -> None:
    for table in ("grants", "grant_upload_errors", "grant_upload_files", "grant_uploads", "partner_keys"):
        op.execute(f"DROP TABLE wallet.{table}")
