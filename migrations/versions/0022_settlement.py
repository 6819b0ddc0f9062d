"""The settlement service's foundations (issue 14, items 1 and 3): each merchant's settlement
cycle from its effective time on, the bank accounts payouts go to, the consortium's source
account (the transfer file's requester) and the region's payout settings. Nothing here refers to
a wallet table: the service reaches the wallet only through services/wallet/public.py.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

ZENGIN = "[0-9A-Z ｦｱ-ﾟ().,/｢｣-]"

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS settlement",
    """CREATE TABLE settlement.merchant_cycles (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        merchant_id UUID NOT NULL,
        cycle TEXT NOT NULL,
        effective_at TIMESTAMP WITH TIME ZONE NOT NULL,
        set_by TEXT NOT NULL,
        CONSTRAINT pk_merchant_cycles PRIMARY KEY (id),
        CONSTRAINT ck_merchant_cycles_cycle CHECK (cycle IN ('monthly', 'twice_monthly', 'on_demand'))
)""",
    """CREATE INDEX ix_merchant_cycles_region_id_merchant_id_effective_at
        ON settlement.merchant_cycles (region_id, merchant_id, effective_at)""",
    f"""CREATE TABLE settlement.payout_accounts (
        region_id UUID NOT NULL,
        merchant_id UUID NOT NULL,
        bank_code TEXT NOT NULL,
        branch_code TEXT NOT NULL,
        account_type TEXT NOT NULL,
        account_number TEXT NOT NULL,
        holder_name TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_payout_accounts PRIMARY KEY (region_id, merchant_id),
        CONSTRAINT ck_payout_accounts_codes CHECK (bank_code ~ '^[0-9]{{4}}$' AND branch_code ~ '^[0-9]{{3}}$'),
        CONSTRAINT ck_payout_accounts_account_type CHECK (account_type IN ('ordinary', 'current', 'savings')),
        CONSTRAINT ck_payout_accounts_account_number CHECK (account_number ~ '^[0-9]{{7}}$'),
        CONSTRAINT ck_payout_accounts_holder_name CHECK (holder_name ~ '^{ZENGIN}{{1,30}}$')
)""",
    f"""CREATE TABLE settlement.source_accounts (
        region_id UUID NOT NULL,
        requester_code TEXT NOT NULL,
        requester_name TEXT NOT NULL,
        bank_code TEXT NOT NULL,
        branch_code TEXT NOT NULL,
        account_type TEXT NOT NULL,
        account_number TEXT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_source_accounts PRIMARY KEY (region_id),
        CONSTRAINT ck_source_accounts_requester_code CHECK (requester_code ~ '^[0-9]{{10}}$'),
        CONSTRAINT ck_source_accounts_requester_name CHECK (requester_name ~ '^{ZENGIN}{{1,40}}$'),
        CONSTRAINT ck_source_accounts_codes CHECK (bank_code ~ '^[0-9]{{4}}$' AND branch_code ~ '^[0-9]{{3}}$'),
        CONSTRAINT ck_source_accounts_account_type CHECK (account_type IN ('ordinary', 'current', 'savings')),
        CONSTRAINT ck_source_accounts_account_number CHECK (account_number ~ '^[0-9]{{7}}$')
)""",
    """CREATE TABLE settlement.payout_settings (
        region_id UUID NOT NULL,
        on_demand_fee BIGINT NOT NULL,
        minimum_payout BIGINT NOT NULL,
        updated_by TEXT NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_payout_settings PRIMARY KEY (region_id),
        CONSTRAINT ck_payout_settings_non_negative CHECK (on_demand_fee >= 0 AND minimum_payout >= 0)
)""",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE settlement.payout_settings, settlement.source_accounts, settlement.payout_accounts, "
               "settlement.merchant_cycles")
