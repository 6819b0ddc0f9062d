"""History imports (issue 14, item 6): what a previous platform recorded, kept as imported rows
beside the ledger (wallet.imported_merchants, imported_residents, imported_movements), and the
settlement service's import jobs, their files and their problems (settlement.history_*). No
column or function of the ledger changes: the `migration` accounts and `opening` journals that
carry residents' balances over are new values of existing text columns (the lots' source check
admits `opening`), and a region's migration accounts are made by its first import that needs them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


LOT_SOURCES = "'legacy', 'topup', 'premium', 'grant', 'reward'"


def upgrade() -> None:
    # A carried-over balance is a lot of its own (services/wallet/ledger/models.py LotSource.OPENING).
    op.execute("ALTER TABLE wallet.lots DROP CONSTRAINT lots_source_check")
    op.execute(f"ALTER TABLE wallet.lots ADD CONSTRAINT lots_source_check CHECK (source IN ({LOT_SOURCES}, 'opening'))")
    op.create_table('history_imports',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('region_code', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=True),
    sa.Column('content_sha256', sa.Text(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('checked_rows', sa.Integer(), nullable=False),
    sa.Column('written_rows', sa.Integer(), nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('problem_type', sa.Text(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_role', sa.Text(), nullable=False),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history_imports')),
    schema='settlement'
    )
    op.create_index('ix_history_imports_region', 'history_imports', ['region_id', 'id'], unique=False, schema='settlement')
    op.create_table('history_import_errors',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('import_id', sa.UUID(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('row_key', sa.Text(), nullable=True),
    sa.Column('field', sa.Text(), nullable=True),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['settlement.history_imports.id'], name=op.f('fk_history_import_errors_import_id_history_imports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_history_import_errors')),
    schema='settlement'
    )
    op.create_index('ix_history_import_errors_import', 'history_import_errors', ['import_id', 'id'], unique=False, schema='settlement')
    op.create_table('history_import_files',
    sa.Column('import_id', sa.UUID(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['settlement.history_imports.id'], name=op.f('fk_history_import_files_import_id_history_imports')),
    sa.PrimaryKeyConstraint('import_id', name=op.f('pk_history_import_files')),
    schema='settlement'
    )
    op.create_table('imported_residents',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('source_key', sa.Text(), nullable=False),
    sa.Column('resident_id', sa.UUID(), nullable=False),
    sa.Column('closing_yen', sa.BigInteger(), nullable=False),
    sa.Column('closing_points', sa.BigInteger(), nullable=False),
    sa.Column('opening_journal_id', sa.UUID(), nullable=True),
    sa.Column('batch_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('closing_yen >= 0 AND closing_points >= 0', name=op.f('ck_imported_residents_closing_not_negative')),
    sa.ForeignKeyConstraint(['opening_journal_id'], ['wallet.journals.id'], name=op.f('fk_imported_residents_opening_journal_id_journals')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_imported_residents_region_id_regions')),
    sa.ForeignKeyConstraint(['resident_id'], ['wallet.residents.id'], name=op.f('fk_imported_residents_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imported_residents')),
    sa.UniqueConstraint('region_id', 'source_key', name=op.f('uq_imported_residents_region_id_source_key')),
    sa.UniqueConstraint('resident_id', name=op.f('uq_imported_residents_resident_id')),
    schema='wallet'
    )
    op.create_table('imported_merchants',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('merchant_id', sa.UUID(), nullable=False),
    sa.Column('onboarded', sa.Boolean(), nullable=False),
    sa.Column('batch_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['wallet.merchants.id'], name=op.f('fk_imported_merchants_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_imported_merchants_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imported_merchants')),
    sa.UniqueConstraint('region_id', 'code', name=op.f('uq_imported_merchants_region_id_code')),
    schema='wallet'
    )
    op.create_table('imported_movements',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('source_key', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resident_id', sa.UUID(), nullable=False),
    sa.Column('merchant_id', sa.UUID(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('payment_key', sa.Text(), nullable=True),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(record IN ('payment', 'refund')) = (merchant_id IS NOT NULL)", name=op.f('ck_imported_movements_merchant_of_sales')),
    sa.CheckConstraint("record IN ('topup', 'payment', 'refund', 'grant')", name=op.f('ck_imported_movements_record')),
    sa.CheckConstraint("unit IN ('yen', 'point')", name=op.f('ck_imported_movements_unit')),
    sa.CheckConstraint('amount > 0 AND fee >= 0 AND fee <= amount', name=op.f('ck_imported_movements_amounts')),
    sa.ForeignKeyConstraint(['merchant_id'], ['wallet.merchants.id'], name=op.f('fk_imported_movements_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_imported_movements_region_id_regions')),
    sa.ForeignKeyConstraint(['resident_id'], ['wallet.residents.id'], name=op.f('fk_imported_movements_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imported_movements')),
    sa.UniqueConstraint('region_id', 'record', 'source_key', 'unit', name=op.f('uq_imported_movements_region_id_record_source_key_unit')),
    schema='wallet'
    )
    op.create_index('ix_imported_movements_merchant', 'imported_movements', ['region_id', 'merchant_id', 'occurred_at'], unique=False, schema='wallet', postgresql_where=sa.text('merchant_id IS NOT NULL'))
    op.create_index('ix_imported_movements_region_time', 'imported_movements', ['region_id', 'occurred_at'], unique=False, schema='wallet')
    op.create_index('ix_imported_movements_resident', 'imported_movements', ['resident_id', 'id'], unique=False, schema='wallet')


def downgrade() -> None:
    op.drop_index('ix_imported_movements_resident', table_name='imported_movements', schema='wallet')
    op.drop_index('ix_imported_movements_region_time', table_name='imported_movements', schema='wallet')
    op.drop_index('ix_imported_movements_merchant', table_name='imported_movements', schema='wallet', postgresql_where=sa.text('merchant_id IS NOT NULL'))
    op.drop_table('imported_movements', schema='wallet')
    op.drop_table('imported_merchants', schema='wallet')
    op.drop_table('imported_residents', schema='wallet')
    op.drop_table('history_import_files', schema='settlement')
    op.drop_index('ix_history_import_errors_import', table_name='history_import_errors', schema='settlement')
    op.drop_table('history_import_errors', schema='settlement')
    op.drop_index('ix_history_imports_region', table_name='history_imports', schema='settlement')
    op.drop_table('history_imports', schema='settlement')
    op.execute("ALTER TABLE wallet.lots DROP CONSTRAINT lots_source_check")
    op.execute(f"ALTER TABLE wallet.lots ADD CONSTRAINT lots_source_check CHECK (source IN ({LOT_SOURCES}))")
