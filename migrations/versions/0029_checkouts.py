"""Partner services and their online checkouts (issue 15, items 1 and 2): the partner services the
operator registered (the merchant each settles to, the URLs its webhooks and return links may
point to, its webhook signing secret), their API keys (hashes only), and the checkouts, each
paid by an ordinary wallet payment named by id. Nothing here refers to a wallet table: the
platform reaches the wallet only through services/wallet/public.py.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03
"""
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE platform.partner_services (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        name TEXT NOT NULL,
        merchant_id UUID NOT NULL,
        callback_urls TEXT[] NOT NULL,
        signing_secret TEXT NOT NULL,
        status TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        revoked_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_partner_services PRIMARY KEY (id),
        CONSTRAINT uq_partner_services_region_id_name UNIQUE (region_id, name),
        CONSTRAINT ck_partner_services_status CHECK (status IN ('active', 'revoked') AND (status = 'revoked') = (revoked_at IS NOT NULL)),
        CONSTRAINT ck_partner_services_callback_urls CHECK (cardinality(callback_urls) BETWEEN 1 AND 20)
)""",
    """CREATE TABLE platform.partner_keys (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        region_code TEXT NOT NULL,
        partner_id UUID NOT NULL,
        secret_hash TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        revoked_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_partner_keys PRIMARY KEY (id),
        CONSTRAINT uq_partner_keys_secret_hash UNIQUE (secret_hash),
        CONSTRAINT fk_partner_keys_partner_id_partner_services FOREIGN KEY (partner_id) REFERENCES platform.partner_services (id)
)""",
    "CREATE INDEX ix_partner_keys_partner_id ON platform.partner_keys (partner_id)",
    """CREATE TABLE platform.checkouts (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        partner_id UUID NOT NULL,
        merchant_id UUID NOT NULL,
        amount BIGINT NOT NULL,
        order_reference TEXT NOT NULL,
        description TEXT NOT NULL,
        callback_url TEXT NOT NULL,
        success_url TEXT NOT NULL,
        cancel_url TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
        payer TEXT,
        payment_id UUID,
        refunded BIGINT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        decided_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_checkouts PRIMARY KEY (id),
        CONSTRAINT fk_checkouts_partner_id_partner_services FOREIGN KEY (partner_id) REFERENCES platform.partner_services (id),
        CONSTRAINT ck_checkouts_status CHECK (status IN ('open', 'paid', 'declined', 'cancelled', 'expired')),
        CONSTRAINT ck_checkouts_paid CHECK ((status = 'paid') = (payment_id IS NOT NULL)),
        CONSTRAINT ck_checkouts_amounts CHECK (amount > 0 AND refunded BETWEEN 0 AND amount)
)""",
    "CREATE INDEX ix_checkouts_partner_id_id ON platform.checkouts (partner_id, id)",
    "CREATE UNIQUE INDEX uq_checkouts_payment_id ON platform.checkouts (payment_id) WHERE payment_id IS NOT NULL",
    "CREATE INDEX ix_checkouts_open_expires_at ON platform.checkouts (expires_at) WHERE status = 'open'",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE platform.checkouts, platform.partner_keys, platform.partner_services")
