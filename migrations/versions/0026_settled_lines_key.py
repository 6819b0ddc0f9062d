"""Settled lines keyed by (journal, merchant, unit), the journal first: journal ids are UUIDv7,
so a run's lines, inserted in time order, go to the end of the key's index instead of a random
place in it (bench/RESULTS.md: inserting 3,000,000 lines took more than twice as long). The
region, which a journal implies, leaves the key. A BRIN index on the run finds a run's lines,
which lie together as the one statement that settled them wrote them.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""
from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint('pk_settled_lines', 'settled_lines', schema='settlement', type_='primary')
    op.create_primary_key('pk_settled_lines', 'settled_lines', ['journal_id', 'merchant_id', 'unit'],
                          schema='settlement')
    op.create_index('ix_settled_lines_run_id', 'settled_lines', ['run_id'], unique=False, schema='settlement',
                    postgresql_using='brin')


def downgrade() -> None:
    op.drop_index('ix_settled_lines_run_id', table_name='settled_lines', schema='settlement', postgresql_using='brin')
    op.drop_constraint('pk_settled_lines', 'settled_lines', schema='settlement', type_='primary')
    op.create_primary_key('pk_settled_lines', 'settled_lines', ['region_id', 'merchant_id', 'unit', 'journal_id'],
                          schema='settlement')
