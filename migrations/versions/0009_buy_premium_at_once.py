"""A first-come premium purchase with its Idempotency-Key in one statement, run without an explicit
transaction: `wallet.buy_premium_at_once`.

After migration 0008 a purchase was one function call, yet still five round trips: BEGIN, the
key's claim, `wallet.buy_premium`, the key's answer, COMMIT. On a slower two-core machine those
round trips were about a third of the app's CPU per purchase, and the rush's purchases arrived
faster than the app could answer them (bench/RESULTS.md, 2026-12-01). One statement is atomic by
itself, so claim, purchase and answer are now made in one call that commits as it returns:

- the key is claimed first; a key already claimed returns the first request's hash, status and
  answer instead (a twin still running is waited for, as the app's own claim waits);
- a refusal is undone with the claim (the block is a subtransaction) and returned as
  `wallet.buy_premium` said it, for the app to turn into its problem; so are the two outcomes the
  app finishes in a transaction of its own: `no_wallet` and `stock_busy`;
- a purchase stores its answer with the key: the purchase as the API shows it
  (services/wallet/premium/schemas.PurchaseOut), built here from the purchase's own values. The
  app renders every answer, first or replayed, from this stored form, so both are the same;
- its statements (and those of the functions it calls) use generic plans from the first call.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BUY_PREMIUM_AT_ONCE = r"""
CREATE FUNCTION wallet.buy_premium_at_once(
    p_caller text,              -- the Idempotency-Key's caller, key and request hash (shared/idempotency.py)
    p_key text,
    p_request_hash text,
    p_region_id uuid,           -- then wallet.buy_premium's parameters
    p_subject text,
    p_campaign_id uuid,
    p_sets integer,
    p_now timestamptz,
    p_start integer,
    p_purchase_id uuid,
    p_journal_id uuid,
    p_ids uuid[]
) RETURNS TABLE (
    first_hash text,            -- the key was claimed before: that request's hash, status and answer
    first_status smallint,
    first_answer json,
    answer json,                -- ok: the purchase, as stored with the key
    -- as wallet.buy_premium's (a refusal, no_wallet or stock_busy; nothing of it was kept):
    outcome text,
    campaign_name text,
    campaign_status text,
    campaign_kind text,
    mode text,
    opens_at timestamptz,
    closes_at timestamptz,
    per_limit integer,
    already integer,
    resident_id uuid,
    local_classes text[],
    usable_from timestamptz,
    usable_until timestamptz,
    account_id uuid,
    usable bigint,
    coin bigint,
    points bigint,
    coin_local bigint,
    points_local bigint,
    lot_roles text[],
    lot_ids uuid[],
    lot_units text[],
    lot_amounts bigint[]
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    BEGIN
        INSERT INTO platform.idempotency_keys (caller, key, request_hash, created_at)
        VALUES (p_caller, p_key, p_request_hash, p_now)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT k.request_hash, k.status_code, k.response INTO first_hash, first_status, first_answer
              FROM platform.idempotency_keys k WHERE k.caller = p_caller AND k.key = p_key;
            RETURN NEXT;
            RETURN;
        END IF;

        SELECT * INTO outcome, campaign_name, campaign_status, campaign_kind, mode, opens_at, closes_at, per_limit,
                      already, resident_id, local_classes, usable_from, usable_until, account_id, usable, coin, points,
                      coin_local, points_local, lot_roles, lot_ids, lot_units, lot_amounts
          FROM wallet.buy_premium(p_region_id, p_subject, p_campaign_id, p_sets, p_now, p_start, p_purchase_id,
                                  p_journal_id, p_ids);
        IF outcome <> 'ok' THEN
            RAISE EXCEPTION USING ERRCODE = 'CPREF', MESSAGE = 'purchase refused: ' || outcome;
        END IF;

        answer := json_build_object(
            'id', p_purchase_id, 'campaign_id', p_campaign_id, 'application_id', NULL, 'sets', p_sets,
            'coin', coin, 'points', points, 'coin_local', coin_local, 'coin_all_shops', coin - coin_local,
            'points_local', points_local, 'points_all_shops', points - points_local,
            'local_classes', local_classes, 'usable_from', usable_from, 'usable_until', usable_until,
            'journal_id', p_journal_id,
            'lots', (SELECT json_agg(json_build_object('role', t.role, 'lot_id', t.lot_id, 'unit', t.unit,
                                                       'amount', t.amount) ORDER BY t.seq)
                       FROM unnest(lot_roles, lot_ids, lot_units, lot_amounts)
                            WITH ORDINALITY AS t (role, lot_id, unit, amount, seq)),
            'created_at', p_now);
        UPDATE platform.idempotency_keys k SET status_code = 201, response = answer
         WHERE k.caller = p_caller AND k.key = p_key;
    EXCEPTION WHEN SQLSTATE 'CPREF' THEN
        NULL;  -- the claim, the tallies and any payment are undone; the outcome says why
    END;
    RETURN NEXT;
END
$$
-- Generic plans from a backend's first call: by default PostgreSQL plans each statement of the
-- three functions afresh for its first five calls on every connection (≈ 2 ms more a call here),
-- which at the opening second is every connection at once. The statements look rows up by key,
-- so the generic plan is the one it settles on anyway.
SET plan_cache_mode = force_generic_plan
"""


def upgrade() -> None:
    op.execute(BUY_PREMIUM_AT_ONCE)


def downgrade() -> None:
    op.execute("DROP FUNCTION wallet.buy_premium_at_once(text, text, text, uuid, text, uuid, integer, timestamptz,"
               " integer, uuid, uuid, uuid[])")
