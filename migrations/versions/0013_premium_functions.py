"""The premium functions' living sources are .sql files beside their module, and the first-come
purchase runs inside the request's transaction with its answer shaped in Python (issue 12, items 2
and 4).

Until now `wallet.buy_premium_at_once` (0009) claimed the Idempotency-Key, bought and stored the
answer in one statement that committed by itself (autocommit), and built the answer's JSON in SQL;
purchases it could not finish went through `wallet.buy_premium` (0008) in a transaction: two
paths, chosen by a process-level cache. Now there is one, `wallet.buy_premium` with the key:
claim, purchase and the key's answer in one statement that the request's commit finishes, so a
purchase commits together with whatever else its transaction does. It returns plain columns (the
app shapes the answer) and stores the purchase's id as the key's answer (the app shapes a replay
from the purchase). `wallet.buy_premium_at_once` and the old `wallet.buy_premium` are dropped;
`wallet.settle_premium` is 0008's but takes the lots in the order of `wallet.spending_key` (0012).

The living sources are services/wallet/premium/sql/buy_premium.sql and settle_premium.sql; below
are frozen snapshots of them (a later change is a new migration with a new snapshot). The
downgrade restores the definitions frozen in 0008 and 0009.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""
from alembic import context, op
from alembic.script import ScriptDirectory

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SETTLE_PREMIUM = r"""
CREATE OR REPLACE FUNCTION wallet.settle_premium(
    p_region_id uuid,
    p_campaign_id uuid,
    p_application_id uuid,
    p_actor text,
    p_resident_id uuid,
    p_yen uuid,
    p_points uuid,
    p_sets integer,
    p_now timestamptz,
    p_purchase_id uuid,
    p_journal_id uuid,
    p_ids uuid[]
) RETURNS TABLE (
    outcome text,               -- ok | account_inactive | insufficient
    account_id uuid,            -- the inactive account
    usable bigint,              -- coin usable at every shop (insufficient)
    coin bigint,
    points bigint,
    coin_local bigint,
    points_local bigint,
    lot_roles text[],           -- the purchase's lots, in the order recorded (premium_purchase_lots.seq)
    lot_ids uuid[],
    lot_units text[],
    lot_amounts bigint[]
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_campaign wallet.campaigns%ROWTYPE;
    v_offer wallet.premium_offers%ROWTYPE;
    v_status_yen text;
    v_status_pts text;
    v_left bigint;
    v_take bigint;
    v_lot record;
    v_new record;
    v_budget uuid;
    v_pts_after bigint;
    v_expires timestamptz;
BEGIN
    SELECT * INTO v_campaign FROM wallet.campaigns c WHERE c.id = p_campaign_id;
    SELECT * INTO v_offer FROM wallet.premium_offers o WHERE o.campaign_id = p_campaign_id;
    coin := p_sets * v_offer.price;
    points := p_sets * (v_offer.value - v_offer.price);
    lot_roles := '{}'; lot_ids := '{}'; lot_units := '{}'; lot_amounts := '{}';

    -- The buyer's two accounts, locked in id order as every posting does.
    PERFORM 1 FROM wallet.accounts a WHERE a.id IN (p_yen, p_points) ORDER BY a.id FOR UPDATE;
    SELECT a.status INTO v_status_yen FROM wallet.accounts a WHERE a.id = p_yen;
    SELECT a.status INTO v_status_pts FROM wallet.accounts a WHERE a.id = p_points;
    IF v_status_yen <> 'active' OR v_status_pts <> 'active' THEN
        outcome := 'account_inactive';
        account_id := CASE WHEN v_status_yen <> 'active' THEN p_yen ELSE p_points END;
        RETURN NEXT;
        RETURN;
    END IF;

    -- The price from coin usable at every shop, in spending order (wallet.spending_key).
    SELECT coalesce(sum(l.remaining), 0) INTO usable FROM wallet.lots l
     WHERE l.account_id = p_yen AND l.remaining > 0 AND l.restriction IS NULL
       AND (l.usable_from IS NULL OR l.usable_from <= p_now) AND (l.expires_at IS NULL OR l.expires_at > p_now);
    IF usable < coin THEN
        outcome := 'insufficient';
        RETURN NEXT;
        RETURN;
    END IF;
    v_left := coin;
    FOR v_lot IN
        SELECT l.id, l.unit, l.remaining FROM wallet.lots l
         WHERE l.account_id = p_yen AND l.remaining > 0 AND l.restriction IS NULL
           AND (l.usable_from IS NULL OR l.usable_from <= p_now) AND (l.expires_at IS NULL OR l.expires_at > p_now)
         ORDER BY wallet.spending_key(l)
    LOOP
        v_take := LEAST(v_lot.remaining, v_left);
        UPDATE wallet.lots l SET remaining = l.remaining - v_take WHERE l.id = v_lot.id;
        lot_roles := lot_roles || 'taken'::text;
        lot_ids := lot_ids || v_lot.id;
        lot_units := lot_units || v_lot.unit;
        lot_amounts := lot_amounts || v_take;
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;

    -- The premium from the campaign budget. The debit is covered and takes no lock: a sale takes
    -- the set from the stock in this transaction (stocked only with its premium in the budget); a
    -- lottery win was drawn only with every won set's premium there. A premium budget keeps no
    -- balance row (campaigns/service.py): its entries are its balance. The coin stays in the
    -- wallet, re-lotted under the set's rules: the yen balance does not move.
    SELECT a.id INTO v_budget FROM wallet.accounts a WHERE a.campaign_id = p_campaign_id AND a.unit = 'point';
    UPDATE wallet.accounts a SET balance = a.balance + points WHERE a.id = p_points RETURNING a.balance INTO v_pts_after;
    INSERT INTO wallet.journals (id, region_id, kind, actor, reference, memo, created_at)
    VALUES (p_journal_id, p_region_id, 'premium', p_actor, p_purchase_id::text, NULL, p_now);
    INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
    VALUES (p_ids[1], p_journal_id, v_budget, p_region_id, 'point', -points, NULL, p_now),
           (p_ids[2], p_journal_id, p_points, p_region_id, 'point', points, v_pts_after, p_now);

    -- The set's lots: local-only and all-shops parts of its coin and of its points (the local
    -- part rounded down, service.split), expiring when the offer says, or at the end of the
    -- campaign's N-th month after this one (Tokyo; lots.end_of_months_after).
    coin_local := coin * v_offer.local_share_bp / 10000;
    points_local := points * v_offer.local_share_bp / 10000;
    v_expires := coalesce(v_offer.usable_until, CASE WHEN v_campaign.expiry_months IS NOT NULL THEN
        (date_trunc('month', p_now AT TIME ZONE 'Asia/Tokyo') + make_interval(months => v_campaign.expiry_months + 1))
            AT TIME ZONE 'Asia/Tokyo' END);
    FOR v_new IN
        SELECT * FROM (VALUES (p_ids[3], p_yen, 'yen', coin_local, v_offer.local_classes),
                              (p_ids[4], p_yen, 'yen', coin - coin_local, NULL::text[]),
                              (p_ids[5], p_points, 'point', points_local, v_offer.local_classes),
                              (p_ids[6], p_points, 'point', points - points_local, NULL::text[]))
            AS n (id, account, unit, amount, restriction)
         WHERE n.amount > 0
    LOOP
        INSERT INTO wallet.lots (id, region_id, account_id, unit, source, campaign_id, journal_id, restriction,
                                 usable_from, expires_at, amount, remaining, expired, created_at)
        VALUES (v_new.id, p_region_id, v_new.account, v_new.unit, 'premium', p_campaign_id, p_journal_id,
                v_new.restriction, v_offer.usable_from, v_expires, v_new.amount, v_new.amount, 0, p_now);
        lot_roles := lot_roles || 'created'::text;
        lot_ids := lot_ids || v_new.id;
        lot_units := lot_units || v_new.unit;
        lot_amounts := lot_amounts || v_new.amount;
    END LOOP;

    INSERT INTO wallet.premium_purchases (id, campaign_id, region_id, resident_id, application_id, sets, coin, points,
                                          coin_local, points_local, journal_id, created_at)
    VALUES (p_purchase_id, p_campaign_id, p_region_id, p_resident_id, p_application_id, p_sets, coin, points,
            coin_local, points_local, p_journal_id, p_now);
    INSERT INTO wallet.premium_purchase_lots (purchase_id, seq, role, lot_id, unit, amount)
    SELECT p_purchase_id, t.seq, t.role, t.lot_id, t.unit, t.amount
      FROM unnest(lot_roles, lot_ids, lot_units, lot_amounts) WITH ORDINALITY AS t (role, lot_id, unit, amount, seq);
    outcome := 'ok';
    RETURN NEXT;
END
$$;
"""

BUY_PREMIUM = r"""
CREATE OR REPLACE FUNCTION wallet.buy_premium(
    p_caller text,
    p_key text,
    p_request_hash text,
    p_region_id uuid,
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
    first_response json,
    outcome text,               -- ok | stock_busy | no_wallet | no_campaign | campaign_closed |
                                -- not_premium | no_offer | wrong_mode | not_open | closed | sold_out |
                                -- person_limit | household_limit | account_inactive | insufficient
    campaign_name text,
    campaign_status text,
    campaign_kind text,
    mode text,
    opens_at timestamptz,
    closes_at timestamptz,
    per_limit integer,          -- the limit passed (person or household)
    already integer,            -- the holder's sets before this purchase (limits)
    resident_id uuid,
    local_classes text[],
    usable_from timestamptz,
    usable_until timestamptz,
    -- as settle_premium's:
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
DECLARE
    v_household text;
    v_yen uuid;
    v_points uuid;
    v_campaign wallet.campaigns%ROWTYPE;
    v_offer wallet.premium_offers%ROWTYPE;
    v_tally integer;
    v_bucket smallint;
    v_settled record;
BEGIN
    -- A subtransaction: a refusal sets `outcome` and raises CPREF, which undoes everything of the
    -- block, the claim included (the variables keep their values).
    BEGIN
        INSERT INTO platform.idempotency_keys (caller, key, request_hash, created_at)
        VALUES (p_caller, p_key, p_request_hash, p_now)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT k.request_hash, k.status_code, k.response INTO first_hash, first_status, first_response
              FROM platform.idempotency_keys k WHERE k.caller = p_caller AND k.key = p_key;
            RETURN NEXT;
            RETURN;
        END IF;

        SELECT r.id, r.household, y.id, p.id INTO resident_id, v_household, v_yen, v_points
          FROM wallet.residents r
          JOIN wallet.accounts y ON y.resident_id = r.id AND y.unit = 'yen'
          JOIN wallet.accounts p ON p.resident_id = r.id AND p.unit = 'point'
         WHERE r.region_id = p_region_id AND r.subject = p_subject;
        IF NOT FOUND THEN
            outcome := 'no_wallet';
            RAISE SQLSTATE 'CPREF';
        END IF;

        -- The campaign and its offer, checked in the order the app checks a lottery application.
        SELECT * INTO v_campaign FROM wallet.campaigns c WHERE c.id = p_campaign_id AND c.region_id = p_region_id;
        IF FOUND THEN
            SELECT * INTO v_offer FROM wallet.premium_offers o WHERE o.campaign_id = p_campaign_id;
        END IF;
        outcome := CASE
            WHEN v_campaign.id IS NULL THEN 'no_campaign'
            WHEN v_campaign.status <> 'active' THEN 'campaign_closed'
            WHEN v_campaign.kind <> 'premium' THEN 'not_premium'
            WHEN v_offer.campaign_id IS NULL THEN 'no_offer'
            WHEN v_offer.mode <> 'first_come' THEN 'wrong_mode'
            WHEN p_now < v_offer.opens_at THEN 'not_open'
            WHEN p_now >= v_offer.closes_at THEN 'closed'
            -- Once every set is in stock, an empty stock is final: refuse before taking any lock.
            WHEN v_offer.unbacked_sets = 0 AND NOT EXISTS (
                SELECT 1 FROM wallet.premium_stock s WHERE s.campaign_id = p_campaign_id AND s.remaining > 0
            ) THEN 'sold_out'
        END;
        campaign_name := v_campaign.name;
        campaign_status := v_campaign.status;
        campaign_kind := v_campaign.kind;
        mode := v_offer.mode;
        opens_at := v_offer.opens_at;
        closes_at := v_offer.closes_at;
        local_classes := v_offer.local_classes;
        usable_from := v_offer.usable_from;
        usable_until := v_offer.usable_until;
        IF outcome IS NOT NULL THEN
            RAISE SQLSTATE 'CPREF';
        END IF;

        -- Limits: raise the holder's tally only if it stays within the limit; the row stays locked
        -- to commit, so one person's (or household's) purchases pass the check one at a time.
        per_limit := v_offer.per_person;
        IF p_sets <= v_offer.per_person THEN
            INSERT INTO wallet.premium_tallies AS t (campaign_id, scope, holder, sets)
            VALUES (p_campaign_id, 'resident', resident_id::text, p_sets)
            ON CONFLICT (campaign_id, scope, holder) DO UPDATE SET sets = t.sets + EXCLUDED.sets
             WHERE t.sets + EXCLUDED.sets <= v_offer.per_person
            RETURNING t.sets INTO v_tally;
        END IF;
        IF v_tally IS NULL THEN
            SELECT coalesce(max(t.sets), 0) INTO already FROM wallet.premium_tallies t
             WHERE t.campaign_id = p_campaign_id AND t.scope = 'resident' AND t.holder = resident_id::text;
            outcome := 'person_limit';
            RAISE SQLSTATE 'CPREF';
        END IF;
        IF v_household IS NOT NULL THEN
            per_limit := v_offer.per_household;
            v_tally := NULL;
            INSERT INTO wallet.premium_tallies AS t (campaign_id, scope, holder, sets)
            VALUES (p_campaign_id, 'household', v_household, p_sets)
            ON CONFLICT (campaign_id, scope, holder) DO UPDATE SET sets = t.sets + EXCLUDED.sets
             WHERE t.sets + EXCLUDED.sets <= v_offer.per_household
            RETURNING t.sets INTO v_tally;
            IF v_tally IS NULL THEN
                SELECT t.sets INTO already FROM wallet.premium_tallies t
                 WHERE t.campaign_id = p_campaign_id AND t.scope = 'household' AND t.holder = v_household;
                outcome := 'household_limit';
                RAISE SQLSTATE 'CPREF';
            END IF;
        END IF;
        per_limit := NULL;

        SELECT * INTO v_settled FROM wallet.settle_premium(
            p_region_id, p_campaign_id, NULL, p_subject, resident_id, v_yen, v_points, p_sets, p_now, p_purchase_id,
            p_journal_id, p_ids);
        outcome := v_settled.outcome;
        account_id := v_settled.account_id;
        usable := v_settled.usable;
        coin := v_settled.coin;
        points := v_settled.points;
        coin_local := v_settled.coin_local;
        points_local := v_settled.points_local;
        lot_roles := v_settled.lot_roles;
        lot_ids := v_settled.lot_ids;
        lot_units := v_settled.lot_units;
        lot_amounts := v_settled.lot_amounts;
        IF outcome <> 'ok' THEN
            RAISE SQLSTATE 'CPREF';
        END IF;

        -- Last, so that a bucket stays locked only from here to the commit: the first bucket (from
        -- p_start round) that holds the sets and that no other purchase has locked. Picked in a
        -- statement of its own: as a subquery of the UPDATE it may be run again for each bucket the
        -- UPDATE scans and pick several (a rush found it: "query returned more than one row").
        --   A pick that finds none is undone (the block is a subtransaction): on its way it may have
        -- locked a bucket that another purchase had just taken from, found it short and passed on,
        -- and a lock kept to commit on such a bucket made the app's slow path, which locks every
        -- bucket, deadlock with this purchase waiting for the offer.
        BEGIN
            SELECT b.bucket INTO v_bucket FROM wallet.premium_stock b
             WHERE b.campaign_id = p_campaign_id AND b.remaining >= p_sets
             ORDER BY (b.bucket + p_start) % v_offer.buckets
             LIMIT 1
               FOR NO KEY UPDATE SKIP LOCKED;
            IF v_bucket IS NULL THEN
                RAISE no_data_found;
            END IF;
            UPDATE wallet.premium_stock s SET remaining = s.remaining - p_sets
             WHERE s.campaign_id = p_campaign_id AND s.bucket = v_bucket;
        EXCEPTION WHEN no_data_found THEN
            v_bucket := NULL;
        END;
        outcome := CASE WHEN v_bucket IS NULL THEN 'stock_busy' ELSE 'ok' END;

        UPDATE platform.idempotency_keys k SET status_code = 201, response = json_build_object('id', p_purchase_id)
         WHERE k.caller = p_caller AND k.key = p_key;
    EXCEPTION WHEN SQLSTATE 'CPREF' THEN
        NULL;  -- refused: nothing of the block was kept; the outcome says why
    END;
    RETURN NEXT;
END
$$
-- Generic plans from a backend's first call: by default PostgreSQL plans each statement of this
-- function and of settle_premium afresh for its first five calls on every connection (about 2 ms
-- more a call on the bench's machine), which at the opening second is every connection at once.
-- The statements look rows up by key, so the generic plan is the one it settles on anyway.
SET plan_cache_mode = force_generic_plan;
"""

AT_ONCE_0009 = ("wallet.buy_premium_at_once(text, text, text, uuid, text, uuid, integer, timestamptz, integer, uuid,"
                " uuid, uuid[])")
BUY_0008 = "wallet.buy_premium(uuid, text, uuid, integer, timestamptz, integer, uuid, uuid, uuid[])"
BUY_0013 = "wallet.buy_premium(text, text, text, uuid, text, uuid, integer, timestamptz, integer, uuid, uuid, uuid[])"
SETTLE = "wallet.settle_premium(uuid, uuid, uuid, text, uuid, uuid, uuid, integer, timestamptz, uuid, uuid, uuid[])"


def upgrade() -> None:
    op.execute(f"DROP FUNCTION {AT_ONCE_0009}")
    op.execute(f"DROP FUNCTION {BUY_0008}")  # another signature and result: replaced, not overloaded
    op.execute(SETTLE_PREMIUM)
    op.execute(BUY_PREMIUM)


def _frozen(revision_id: str, name: str) -> str:
    """A definition as an earlier migration froze it."""
    script = ScriptDirectory.from_config(context.config).get_revision(revision_id)
    assert script is not None and script.module is not None
    return getattr(script.module, name)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {BUY_0013}")
    op.execute(f"DROP FUNCTION {SETTLE}")
    op.execute(_frozen("0008", "SETTLE_PREMIUM"))
    op.execute(_frozen("0008", "BUY_PREMIUM"))
    op.execute(_frozen("0009", "BUY_PREMIUM_AT_ONCE"))
