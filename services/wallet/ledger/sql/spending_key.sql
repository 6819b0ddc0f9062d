-- The spending order: the one place it is written. Among the lots that may pay (at that merchant,
-- at that moment), a spend takes them in ascending order of this key:
--   1. points before coin: free value is used up before paid-in money;
--   2. then the earliest expiry first, never-expiring lots last (a row sorts a NULL field after
--      every value: the NULLS LAST this needs);
--   3. then restricted lots before unrestricted ones: keep the value that pays anywhere;
--   4. then the oldest lot first, and by id to make the order total.
-- Refunds restore in the reverse order. Every query that spends lots sorts with it: wallet.pay
-- (services/wallet/payments/sql/pay.sql) and the lot queries of services/wallet/ledger/repository.py.
-- A plain SQL expression of a named row type (wallet.spending_rank, migration 0012: a function
-- returning an anonymous record is never inlined), IMMUTABLE and not STRICT, so the planner
-- inlines it into the caller's query and sorts on these columns as if they were written there.
-- The living source of this function; migrations hold snapshots of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION wallet.spending_key(l wallet.lots) RETURNS wallet.spending_rank LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ROW(l.unit = 'yen', l.expires_at, l.restriction IS NULL, l.created_at, l.id)::wallet.spending_rank
$$;
