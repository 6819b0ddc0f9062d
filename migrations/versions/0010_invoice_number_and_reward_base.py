"""A merchant's qualified-invoice registration number, and what part of a payment earns a reward.

- `merchants.invoice_registration_number`: the 適格請求書発行事業者登録番号 ("T" and 13 digits)
  that a registered shop prints on its receipts; null for a shop that is not registered. The
  database checks its shape; the service checks its check digit (services/wallet/service.py).
- `campaigns.reward_points_payments`: whether the part of a payment paid in points earns the
  campaign's reward (false: only the coin part does). Reward campaigns created before this
  migration rewarded the whole amount, whatever paid it, and keep that rule: they were announced
  with it.
- `payment_rewards.base`: the part of the payment that earned the reward (its coin part, or its
  whole amount), kept with the reward so that a refund takes back the share of the reward that
  belongs to what it refunded (services/wallet/campaigns/rewards.py). Rewards given before this
  migration were earned on the whole amount.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATEMENTS = [
    """ALTER TABLE wallet.merchants ADD COLUMN invoice_registration_number text
        CONSTRAINT invoice_registration_number CHECK (invoice_registration_number ~ '^T[1-9][0-9]{12}$')""",
    "ALTER TABLE wallet.campaigns ADD COLUMN reward_points_payments boolean NOT NULL DEFAULT false",
    "UPDATE wallet.campaigns SET reward_points_payments = true WHERE kind = 'reward'",
    "ALTER TABLE wallet.payment_rewards ADD COLUMN base bigint",
    """UPDATE wallet.payment_rewards r SET base = p.amount FROM wallet.payments p WHERE p.id = r.payment_id""",
    "ALTER TABLE wallet.payment_rewards ALTER COLUMN base SET NOT NULL, ADD CHECK (base > 0)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE wallet.payment_rewards DROP COLUMN base")
    op.execute("ALTER TABLE wallet.campaigns DROP COLUMN reward_points_payments")
    op.execute("ALTER TABLE wallet.merchants DROP COLUMN invoice_registration_number")
