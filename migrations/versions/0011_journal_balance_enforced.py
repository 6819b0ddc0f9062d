"""The database enforces double entry (invariant 1): a deferred constraint trigger on
wallet.entries refuses, at commit, any journal whose entries do not sum to zero per unit,
whichever code wrote it. Before, only the app's `post_journal` checked it, in Python; the hottest
paths (wallet.pay, wallet.settle_premium) write journals in SQL and were checked by nothing but
`ledger verify` after the fact.

The function's living source is services/wallet/ledger/sql/check_journal_balanced.sql (it was
services/wallet/sql/ when this was written); this is a frozen snapshot of it (a later change to
the function is a new migration with a new snapshot).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHECK_JOURNAL_BALANCED = r"""
CREATE OR REPLACE FUNCTION wallet.check_journal_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT e.unit, sum(e.amount) AS total INTO off
    FROM wallet.entries e
    WHERE e.journal_id = NEW.journal_id
    GROUP BY e.unit
    HAVING sum(e.amount) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal % does not balance: its % entries sum to %, not 0', NEW.journal_id, off.unit, off.total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(CHECK_JOURNAL_BALANCED)
    op.execute(
        "CREATE CONSTRAINT TRIGGER entries_balanced AFTER INSERT ON wallet.entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wallet.check_journal_balanced()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER entries_balanced ON wallet.entries")
    op.execute("DROP FUNCTION wallet.check_journal_balanced()")
