"""Foundation: regions, residents, merchants, accounts, the double-entry ledger, API keys,
idempotency records and the audit trail.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


SCHEMAS = ("wallet", "coupons", "settlement")

# Journals, entries and the audit trail are immutable: a mistake is corrected by a new journal.
APPEND_ONLY = ("wallet.journals", "wallet.entries", "platform.audit_events")


def upgrade() -> None:
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.create_table('audit_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=True),
    sa.Column('actor_subject', sa.Text(), nullable=False),
    sa.Column('actor_role', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('target_type', sa.Text(), nullable=False),
    sa.Column('target_id', sa.Text(), nullable=True),
    sa.Column('before', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('request_id', sa.Text(), nullable=True),
    sa.Column('source_address', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    schema='platform'
    )
    op.create_index('ix_audit_events_region_id_id', 'audit_events', ['region_id', 'id'], unique=False, schema='platform')
    op.create_table('idempotency_keys',
    sa.Column('caller', sa.Text(), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('request_hash', sa.Text(), nullable=False),
    sa.Column('status_code', sa.SmallInteger(), nullable=True),
    sa.Column('response', postgresql.JSON(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('caller', 'key', name=op.f('pk_idempotency_keys')),
    schema='platform'
    )
    op.create_table('regions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_ja', sa.Text(), nullable=False),
    sa.Column('balance_cap', sa.BigInteger(), nullable=False),
    sa.Column('topup_min', sa.BigInteger(), nullable=False),
    sa.Column('topup_max', sa.BigInteger(), nullable=False),
    sa.Column('topup_step', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('balance_cap > 0', name=op.f('ck_regions_balance_cap_positive')),
    sa.CheckConstraint('topup_step > 0 AND topup_min > 0 AND topup_max >= topup_min', name=op.f('ck_regions_topup_limits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_regions')),
    sa.UniqueConstraint('code', name=op.f('uq_regions_code')),
    schema='wallet'
    )
    op.create_table('journals',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('actor', sa.Text(), nullable=False),
    sa.Column('reference', sa.Text(), nullable=True),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_journals_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journals')),
    schema='wallet'
    )
    op.create_index('ix_journals_region_id_id', 'journals', ['region_id', 'id'], unique=False, schema='wallet')
    op.create_table('merchants',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('name_ja', sa.Text(), nullable=False),
    sa.Column('sector', sa.Text(), nullable=False),
    sa.Column('mcc', sa.Text(), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('bank_code', sa.Text(), nullable=False),
    sa.Column('branch_code', sa.Text(), nullable=False),
    sa.Column('account_type', sa.SmallInteger(), nullable=False),
    sa.Column('account_number', sa.Text(), nullable=False),
    sa.Column('account_holder_kana', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("account_number ~ '^[0-9]{7}$'", name=op.f('ck_merchants_account_number')),
    sa.CheckConstraint("bank_code ~ '^[0-9]{4}$' AND branch_code ~ '^[0-9]{3}$'", name=op.f('ck_merchants_bank_codes')),
    sa.CheckConstraint("mcc ~ '^[0-9]{4}$'", name=op.f('ck_merchants_mcc_four_digits')),
    sa.CheckConstraint("status IN ('active', 'suspended', 'closed')", name=op.f('ck_merchants_status')),
    sa.CheckConstraint('account_type IN (1, 2, 4)', name=op.f('ck_merchants_account_type')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_merchants_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('region_id', 'name', name=op.f('uq_merchants_region_id_name')),
    schema='wallet'
    )
    op.create_table('residents',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_residents_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_residents')),
    sa.UniqueConstraint('region_id', 'subject', name=op.f('uq_residents_region_id_subject')),
    schema='wallet'
    )
    op.create_table('accounts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('resident_id', sa.UUID(), nullable=True),
    sa.Column('merchant_id', sa.UUID(), nullable=True),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('tracks_balance', sa.Boolean(), nullable=False),
    sa.Column('may_go_negative', sa.Boolean(), nullable=False),
    sa.Column('balance', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'resident') = (resident_id IS NOT NULL) AND (kind = 'merchant') = (merchant_id IS NOT NULL)", name=op.f('ck_accounts_owner_matches_kind')),
    sa.CheckConstraint("status IN ('active', 'suspended', 'closed')", name=op.f('ck_accounts_status')),
    sa.CheckConstraint("unit IN ('yen', 'point')", name=op.f('ck_accounts_unit')),
    sa.CheckConstraint('may_go_negative OR balance >= 0', name=op.f('ck_accounts_no_overdraft')),
    sa.CheckConstraint('tracks_balance OR balance = 0', name=op.f('ck_accounts_untracked_balance_zero')),
    sa.ForeignKeyConstraint(['merchant_id'], ['wallet.merchants.id'], name=op.f('fk_accounts_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_accounts_region_id_regions')),
    sa.ForeignKeyConstraint(['resident_id'], ['wallet.residents.id'], name=op.f('fk_accounts_resident_id_residents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    schema='wallet'
    )
    op.create_index('uq_accounts_merchant_unit', 'accounts', ['merchant_id', 'unit'], unique=True, schema='wallet', postgresql_where=sa.text('merchant_id IS NOT NULL'))
    op.create_index('uq_accounts_region_system_kind_unit', 'accounts', ['region_id', 'kind', 'unit'], unique=True, schema='wallet', postgresql_where=sa.text('resident_id IS NULL AND merchant_id IS NULL'))
    op.create_index('uq_accounts_resident_unit', 'accounts', ['resident_id', 'unit'], unique=True, schema='wallet', postgresql_where=sa.text('resident_id IS NOT NULL'))
    op.create_table('api_keys',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('merchant_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('secret_hash', sa.Text(), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merchant_id'], ['wallet.merchants.id'], name=op.f('fk_api_keys_merchant_id_merchants')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_api_keys_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_api_keys_secret_hash')),
    schema='wallet'
    )
    op.create_index('ix_api_keys_merchant_id', 'api_keys', ['merchant_id'], unique=False, schema='wallet')
    op.create_table('bank_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('journal_id', sa.UUID(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['journal_id'], ['wallet.journals.id'], name=op.f('fk_bank_events_journal_id_journals')),
    sa.ForeignKeyConstraint(['region_id'], ['wallet.regions.id'], name=op.f('fk_bank_events_region_id_regions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_events')),
    sa.UniqueConstraint('region_id', 'event_id', name=op.f('uq_bank_events_region_id_event_id')),
    schema='wallet'
    )
    op.create_table('entries',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('journal_id', sa.UUID(), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('region_id', sa.UUID(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_entries_amount_nonzero')),
    sa.ForeignKeyConstraint(['account_id'], ['wallet.accounts.id'], name=op.f('fk_entries_account_id_accounts')),
    sa.ForeignKeyConstraint(['journal_id'], ['wallet.journals.id'], name=op.f('fk_entries_journal_id_journals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entries')),
    schema='wallet'
    )
    op.create_index('ix_entries_account_id_id', 'entries', ['account_id', 'id'], unique=False, schema='wallet', postgresql_include=['amount'])
    op.create_index('ix_entries_journal_id', 'entries', ['journal_id'], unique=False, schema='wallet')
    op.execute(
        """
        CREATE FUNCTION platform.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    for table in APPEND_ONLY:
        name = table.replace(".", "_")
        op.execute(
            f"CREATE TRIGGER {name}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION platform.refuse_change()"
        )


def downgrade() -> None:
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER {table.replace('.', '_')}_append_only ON {table}")
    op.execute("DROP FUNCTION platform.refuse_change()")
    op.drop_index('ix_entries_journal_id', table_name='entries', schema='wallet')
    op.drop_index('ix_entries_account_id_id', table_name='entries', schema='wallet', postgresql_include=['amount'])
    op.drop_table('entries', schema='wallet')
    op.drop_table('bank_events', schema='wallet')
    op.drop_index('ix_api_keys_merchant_id', table_name='api_keys', schema='wallet')
    op.drop_table('api_keys', schema='wallet')
    op.drop_index('uq_accounts_resident_unit', table_name='accounts', schema='wallet', postgresql_where=sa.text('resident_id IS NOT NULL'))
    op.drop_index('uq_accounts_region_system_kind_unit', table_name='accounts', schema='wallet', postgresql_where=sa.text('resident_id IS NULL AND merchant_id IS NULL'))
    op.drop_index('uq_accounts_merchant_unit', table_name='accounts', schema='wallet', postgresql_where=sa.text('merchant_id IS NOT NULL'))
    op.drop_table('accounts', schema='wallet')
    op.drop_table('residents', schema='wallet')
    op.drop_table('merchants', schema='wallet')
    op.drop_index('ix_journals_region_id_id', table_name='journals', schema='wallet')
    op.drop_table('journals', schema='wallet')
    op.drop_table('regions', schema='wallet')
    op.drop_table('idempotency_keys', schema='platform')
    op.drop_index('ix_audit_events_region_id_id', table_name='audit_events', schema='platform')
    op.drop_table('audit_events', schema='platform')
    for schema in SCHEMAS:
        op.execute(f"DROP SCHEMA IF EXISTS {schema}")
