"""Class-dependent reward campaigns: points back on payments at a rate per merchant class, within
a reward period and a monthly cap per resident.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = [
    """ALTER TABLE wallet.campaigns
        ADD COLUMN reward_from timestamptz,
        ADD COLUMN reward_until timestamptz,
        ADD COLUMN reward_monthly_cap bigint CHECK (reward_monthly_cap IS NULL OR reward_monthly_cap > 0)""",
    """CREATE TABLE wallet.reward_rates (
        campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
        region_id uuid NOT NULL,
        merchant_class text NOT NULL,
        rate_bp smallint NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000),
        PRIMARY KEY (campaign_id, merchant_class),
        FOREIGN KEY (region_id, merchant_class) REFERENCES wallet.merchant_classes (region_id, code)
    )""",
    # Points rewarded per resident, campaign and (Tokyo) month: the monthly cap's counter.
    """CREATE TABLE wallet.reward_months (
        campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
        resident_id uuid NOT NULL REFERENCES wallet.residents (id),
        month date NOT NULL,
        points bigint NOT NULL CHECK (points >= 0),
        PRIMARY KEY (campaign_id, resident_id, month)
    )""",
    """CREATE TABLE wallet.payment_rewards (
        payment_id uuid NOT NULL REFERENCES wallet.payments (id),
        campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
        journal_id uuid NOT NULL REFERENCES wallet.journals (id),
        lot_id uuid NOT NULL REFERENCES wallet.lots (id),
        month date NOT NULL,
        points bigint NOT NULL CHECK (points > 0),
        clawed_back bigint NOT NULL DEFAULT 0 CHECK (clawed_back >= 0 AND clawed_back <= points),
        PRIMARY KEY (payment_id, campaign_id)
    )""",
    # What the payment earned (less what refunds took back): shown on its receipt.
    "ALTER TABLE wallet.payments ADD COLUMN reward_points bigint NOT NULL DEFAULT 0 CHECK (reward_points >= 0)",
    "CREATE INDEX ix_campaigns_active_rewards ON wallet.campaigns (region_id) WHERE kind = 'reward' AND status = 'active'",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX wallet.ix_campaigns_active_rewards")
    op.execute("ALTER TABLE wallet.payments DROP COLUMN reward_points")
    op.execute("DROP TABLE wallet.payment_rewards")
    op.execute("DROP TABLE wallet.reward_months")
    op.execute("DROP TABLE wallet.reward_rates")
    op.execute("ALTER TABLE wallet.campaigns DROP COLUMN reward_from, DROP COLUMN reward_until, DROP COLUMN reward_monthly_cap")
