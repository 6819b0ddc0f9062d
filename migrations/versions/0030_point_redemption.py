"""Point redemptions (ポイント換金, issue 14): a settlement run pays a merchant for the points
residents spent at its shop. `wallet.statement_lines` shows a `point_redemption` journal as two
lines of the merchant's (its points retired, the yen paid for them); its living source is
services/wallet/payments/sql/statement_lines.sql, this a frozen snapshot of it (and 0025's to go
back to). A partial index finds a keyed redemption by its reference, as a payout's is found. A
statement keeps the points it carried in, redeemed and carried out
(services/settlement/runs/models.py).
"""
from alembic import op
import sqlalchemy as sa


revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

STATEMENT_LINES = r"""
CREATE OR REPLACE VIEW wallet.statement_lines AS
-- Payments: the price the resident paid, per unit it was paid in, and the fee on it.
SELECT p.journal_id, p.region_id, p.merchant_id, u.unit, 'payment'::text AS kind,
       u.amount, u.fee, u.amount - u.fee AS net, p.created_at AS occurred_at,
       p.id AS payment_id, NULL::uuid AS refund_id, NULL::uuid AS counterparty_merchant_id
  FROM wallet.payments p
 CROSS JOIN LATERAL (VALUES ('yen', p.amount - p.point_amount, p.fee - p.fee_point),
                            ('point', p.point_amount, p.fee_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- Refunds, on their own date: what went back, less the fee returned.
SELECT r.journal_id, r.region_id, r.merchant_id, u.unit, 'refund',
       -u.amount, -u.fee, u.fee - u.amount, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 CROSS JOIN LATERAL (VALUES ('yen', r.amount - r.point_amount, r.fee_returned - r.fee_returned_point),
                            ('point', r.point_amount, r.fee_returned_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- A sponsor's budget pays the shop the discount it funded.
SELECT d.credit_journal_id, d.region_id, d.merchant_id, 'yen', 'sponsor_credit',
       d.discount, 0, d.discount, d.created_at,
       d.payment_id, NULL, NULL
  FROM wallet.payment_discounts d
 WHERE d.credit_journal_id IS NOT NULL
UNION ALL
-- A refund gives the sponsor back its share of the discount.
SELECT r.sponsor_journal_id, r.region_id, r.merchant_id, 'yen', 'sponsor_reversal',
       -r.sponsor_reversed, 0, -r.sponsor_reversed, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 WHERE r.sponsor_journal_id IS NOT NULL
UNION ALL
-- Merchant-to-merchant transfers, out of the payer and into the payee (who bears the fee),
-- payouts to the merchant's bank account and their fees (an on-demand payout's, a journal of its
-- own), a sponsor's payments to a merchant for what it gave a resident on the sponsor's
-- account (a bus fare in a bundle), and point redemptions (ポイント換金: two lines, the points
-- retired and the yen paid for them): no fee, no payment.
SELECT j.id, j.region_id, a.merchant_id, e.unit,
       CASE WHEN j.kind IN ('payout', 'payout_fee', 'sponsor_payment', 'point_redemption') THEN j.kind
            WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END,
       e.amount + coalesce(f.fee, 0), coalesce(f.fee, 0), e.amount, j.created_at,
       NULL, NULL, o.merchant_id
  FROM wallet.journals j
  JOIN wallet.entries e ON e.journal_id = j.id
  JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'merchant'
  LEFT JOIN LATERAL (
        SELECT sum(fe.amount)::bigint AS fee FROM wallet.entries fe
          JOIN wallet.accounts fa ON fa.id = fe.account_id AND fa.kind = 'fee_income'
         WHERE fe.journal_id = j.id AND fe.unit = e.unit AND e.amount > 0
  ) f ON true
  LEFT JOIN LATERAL (
        SELECT oa.merchant_id FROM wallet.entries oe
          JOIN wallet.accounts oa ON oa.id = oe.account_id AND oa.kind = 'merchant'
         WHERE oe.journal_id = j.id AND oe.account_id <> e.account_id AND oa.merchant_id <> a.merchant_id
         LIMIT 1
  ) o ON true
 WHERE j.kind IN ('transfer', 'payout', 'payout_fee', 'sponsor_payment', 'point_redemption');
"""

# As 0025 left it, for the downgrade.
STATEMENT_LINES_BEFORE = r"""
CREATE OR REPLACE VIEW wallet.statement_lines AS
-- Payments: the price the resident paid, per unit it was paid in, and the fee on it.
SELECT p.journal_id, p.region_id, p.merchant_id, u.unit, 'payment'::text AS kind,
       u.amount, u.fee, u.amount - u.fee AS net, p.created_at AS occurred_at,
       p.id AS payment_id, NULL::uuid AS refund_id, NULL::uuid AS counterparty_merchant_id
  FROM wallet.payments p
 CROSS JOIN LATERAL (VALUES ('yen', p.amount - p.point_amount, p.fee - p.fee_point),
                            ('point', p.point_amount, p.fee_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- Refunds, on their own date: what went back, less the fee returned.
SELECT r.journal_id, r.region_id, r.merchant_id, u.unit, 'refund',
       -u.amount, -u.fee, u.fee - u.amount, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 CROSS JOIN LATERAL (VALUES ('yen', r.amount - r.point_amount, r.fee_returned - r.fee_returned_point),
                            ('point', r.point_amount, r.fee_returned_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- A sponsor's budget pays the shop the discount it funded.
SELECT d.credit_journal_id, d.region_id, d.merchant_id, 'yen', 'sponsor_credit',
       d.discount, 0, d.discount, d.created_at,
       d.payment_id, NULL, NULL
  FROM wallet.payment_discounts d
 WHERE d.credit_journal_id IS NOT NULL
UNION ALL
-- A refund gives the sponsor back its share of the discount.
SELECT r.sponsor_journal_id, r.region_id, r.merchant_id, 'yen', 'sponsor_reversal',
       -r.sponsor_reversed, 0, -r.sponsor_reversed, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 WHERE r.sponsor_journal_id IS NOT NULL
UNION ALL
-- Merchant-to-merchant transfers, out of the payer and into the payee (who bears the fee),
-- payouts to the merchant's bank account and their fees (an on-demand payout's, a journal of its
-- own), and a sponsor's payments to a merchant for what it gave a resident on the sponsor's
-- account (a bus fare in a bundle): no fee, no payment.
SELECT j.id, j.region_id, a.merchant_id, e.unit,
       CASE WHEN j.kind IN ('payout', 'payout_fee', 'sponsor_payment') THEN j.kind
            WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END,
       e.amount + coalesce(f.fee, 0), coalesce(f.fee, 0), e.amount, j.created_at,
       NULL, NULL, o.merchant_id
  FROM wallet.journals j
  JOIN wallet.entries e ON e.journal_id = j.id
  JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'merchant'
  LEFT JOIN LATERAL (
        SELECT sum(fe.amount)::bigint AS fee FROM wallet.entries fe
          JOIN wallet.accounts fa ON fa.id = fe.account_id AND fa.kind = 'fee_income'
         WHERE fe.journal_id = j.id AND fe.unit = e.unit AND e.amount > 0
  ) f ON true
  LEFT JOIN LATERAL (
        SELECT oa.merchant_id FROM wallet.entries oe
          JOIN wallet.accounts oa ON oa.id = oe.account_id AND oa.kind = 'merchant'
         WHERE oe.journal_id = j.id AND oe.account_id <> e.account_id
         LIMIT 1
  ) o ON true
 WHERE j.kind IN ('transfer', 'payout', 'payout_fee', 'sponsor_payment');
"""

_COLUMNS = ("point_carry_in", "points_redeemed", "point_carry_out")


def upgrade() -> None:
    op.execute(STATEMENT_LINES)
    op.create_index("ix_journals_redemption_reference", "journals", ["region_id", "reference"], unique=False,
                    schema="wallet", postgresql_where=sa.text("kind = 'point_redemption'"))
    for name in _COLUMNS:  # statements of earlier runs settled no points
        op.add_column("run_merchants", sa.Column(name, sa.BigInteger(), nullable=False, server_default="0"),
                      schema="settlement")
        op.alter_column("run_merchants", name, server_default=None, schema="settlement")
    op.create_check_constraint(op.f("ck_run_merchants_points"), "run_merchants", "points_redeemed >= 0",
                               schema="settlement")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_run_merchants_points"), "run_merchants", schema="settlement", type_="check")
    for name in reversed(_COLUMNS):
        op.drop_column("run_merchants", name, schema="settlement")
    op.drop_index("ix_journals_redemption_reference", table_name="journals", schema="wallet",
                  postgresql_where=sa.text("kind = 'point_redemption'"))
    op.execute(STATEMENT_LINES_BEFORE)
