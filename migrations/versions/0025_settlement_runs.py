"""Settlement runs (issue 14, items 2 and 3): a run per region and period (unique), each
merchant's statement in it, and every statement line it settled, keyed by (region, merchant,
unit, journal) so that a journal is settled once (services/settlement/runs/models.py). A partial
index on the wallet's journals finds a keyed payout and its fee by their reference (those kinds
only). `wallet.statement_lines` shows a payout's fee (`payout_fee` journals, an on-demand
payout's) as a line of its own kind; its living source is
services/wallet/payments/sql/statement_lines.sql, this a frozen snapshot of it.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0024'
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

# As 0019 left it, for the downgrade.
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
-- payouts to the merchant's bank account, and a sponsor's payments to a merchant for what it gave
-- a resident on the sponsor's account (a bus fare in a bundle): no fee, no payment.
SELECT j.id, j.region_id, a.merchant_id, e.unit,
       CASE WHEN j.kind IN ('payout', 'sponsor_payment') THEN j.kind
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
 WHERE j.kind IN ('transfer', 'payout', 'sponsor_payment');
"""


def upgrade() -> None:
    op.create_table('run_merchants',
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('merchant_id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('name_ja', sa.Text(), nullable=False),
    sa.Column('lines', sa.BigInteger(), nullable=False),
    sa.Column('carry_in', sa.BigInteger(), nullable=False),
    sa.Column('payments', sa.BigInteger(), nullable=False),
    sa.Column('refunds', sa.BigInteger(), nullable=False),
    sa.Column('sponsored', sa.BigInteger(), nullable=False),
    sa.Column('fees', sa.BigInteger(), nullable=False),
    sa.Column('transfers_in', sa.BigInteger(), nullable=False),
    sa.Column('transfers_out', sa.BigInteger(), nullable=False),
    sa.Column('other_payouts', sa.BigInteger(), nullable=False),
    sa.Column('adjustments', sa.BigInteger(), nullable=False),
    sa.Column('due', sa.BigInteger(), nullable=False),
    sa.Column('payout', sa.BigInteger(), nullable=False),
    sa.Column('payout_fee', sa.BigInteger(), nullable=False),
    sa.Column('carry_out', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('payout_journal_id', sa.UUID(), nullable=True),
    sa.Column('payout_fee_journal_id', sa.UUID(), nullable=True),
    sa.Column('bank_code', sa.Text(), nullable=True),
    sa.Column('bank_name', sa.Text(), nullable=True),
    sa.Column('branch_code', sa.Text(), nullable=True),
    sa.Column('branch_name', sa.Text(), nullable=True),
    sa.Column('account_type', sa.Text(), nullable=True),
    sa.Column('account_number', sa.Text(), nullable=True),
    sa.Column('holder_name', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('paid', 'carried', 'held')", name=op.f('ck_run_merchants_status')),
    sa.CheckConstraint('payout >= 0 AND payout_fee >= 0 AND carry_out = due - payout - payout_fee', name=op.f('ck_run_merchants_payout')),
    sa.PrimaryKeyConstraint('run_id', 'merchant_id', name=op.f('pk_run_merchants')),
    schema='settlement'
    )
    op.create_index('ix_run_merchants_region_id_merchant_id', 'run_merchants', ['region_id', 'merchant_id'], unique=False, schema='settlement')
    op.create_table('runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('cycle', sa.Text(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pay_date', sa.Date(), nullable=False),
    sa.Column('minimum_payout', sa.BigInteger(), nullable=False),
    sa.Column('merchants', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.BigInteger(), nullable=False),
    sa.Column('paid', sa.BigInteger(), nullable=False),
    sa.Column('payout_total', sa.BigInteger(), nullable=False),
    sa.Column('held_back', sa.BigInteger(), nullable=False),
    sa.Column('requester_code', sa.Text(), nullable=True),
    sa.Column('requester_name', sa.Text(), nullable=True),
    sa.Column('requester_bank_code', sa.Text(), nullable=True),
    sa.Column('requester_bank_name', sa.Text(), nullable=True),
    sa.Column('requester_branch_code', sa.Text(), nullable=True),
    sa.Column('requester_branch_name', sa.Text(), nullable=True),
    sa.Column('requester_account_type', sa.Text(), nullable=True),
    sa.Column('requester_account_number', sa.Text(), nullable=True),
    sa.Column('run_by', sa.Text(), nullable=False),
    sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("cycle IN ('monthly', 'twice_monthly', 'on_demand')", name=op.f('ck_runs_cycle')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs')),
    sa.UniqueConstraint('region_id', 'label', name='uq_runs_region_id_label'),
    schema='settlement'
    )
    op.create_table('settled_lines',
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('merchant_id', sa.UUID(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('journal_id', sa.UUID(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('net', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payment_id', sa.UUID(), nullable=True),
    sa.Column('refund_id', sa.UUID(), nullable=True),
    sa.Column('counterparty_merchant_id', sa.UUID(), nullable=True),
    sa.Column('adjustment', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('region_id', 'merchant_id', 'unit', 'journal_id', name=op.f('pk_settled_lines')),
    schema='settlement'
    )
    op.create_index('ix_journals_payout_reference', 'journals', ['region_id', 'reference'], unique=False, schema='wallet', postgresql_where=sa.text("kind IN ('payout', 'payout_fee')"))
    op.execute(STATEMENT_LINES)


def downgrade() -> None:
    op.execute(STATEMENT_LINES_BEFORE)
    op.drop_index('ix_journals_payout_reference', table_name='journals', schema='wallet', postgresql_where=sa.text("kind IN ('payout', 'payout_fee')"))
    op.drop_table('settled_lines', schema='settlement')
    op.drop_table('runs', schema='settlement')
    op.drop_index('ix_run_merchants_region_id_merchant_id', table_name='run_merchants', schema='settlement')
    op.drop_table('run_merchants', schema='settlement')
