"""Settlement runs (issue 14, items 2 and 3): a run per region and period (unique), each
merchant's statement in it, and every statement line it settled, keyed by (region, merchant,
unit, journal) so that a journal is settled once (services/settlement/runs/models.py). A partial
index on the wallet's journals finds a keyed payout by its reference (payouts only).

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
    sa.Column('carry_out', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('hold_reason', sa.Text(), nullable=True),
    sa.Column('payout_journal_id', sa.UUID(), nullable=True),
    sa.Column('bank_code', sa.Text(), nullable=True),
    sa.Column('bank_name', sa.Text(), nullable=True),
    sa.Column('branch_code', sa.Text(), nullable=True),
    sa.Column('branch_name', sa.Text(), nullable=True),
    sa.Column('account_type', sa.Text(), nullable=True),
    sa.Column('account_number', sa.Text(), nullable=True),
    sa.Column('holder_name', sa.Text(), nullable=True),
    sa.CheckConstraint("status IN ('paid', 'carried', 'held')", name=op.f('ck_run_merchants_status')),
    sa.CheckConstraint('payout >= 0 AND carry_out = due - payout', name=op.f('ck_run_merchants_payout')),
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
    op.create_index('ix_journals_payout_reference', 'journals', ['region_id', 'reference'], unique=False, schema='wallet', postgresql_where=sa.text("kind = 'payout'"))


def downgrade() -> None:
    op.drop_index('ix_journals_payout_reference', table_name='journals', schema='wallet', postgresql_where=sa.text("kind = 'payout'"))
    op.drop_table('settled_lines', schema='settlement')
    op.drop_table('runs', schema='settlement')
    op.drop_index('ix_run_merchants_region_id_merchant_id', table_name='run_merchants', schema='settlement')
    op.drop_table('run_merchants', schema='settlement')
