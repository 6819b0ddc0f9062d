-- Invariant 1, enforced by the database: at commit, every journal's entries sum to zero per unit,
-- whichever code wrote them (the app's post_journal, wallet.pay, wallet.settle_premium, raw SQL).
-- Run by the deferred constraint trigger entries_balanced once per entry inserted; a journal is
-- summed by its index (ix_entries_journal_id), and the first unit found out of balance refuses
-- the commit, so nothing of the transaction is kept.
-- The living source of this function; migration 0011 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
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
