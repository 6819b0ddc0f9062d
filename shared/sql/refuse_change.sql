-- Append-only tables (journals, entries, the audit trail, grants): a BEFORE UPDATE OR DELETE
-- trigger on each runs this and refuses the change, whichever code tries it (invariant 5).
-- The living source of this function; migration 0001 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION platform.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;
