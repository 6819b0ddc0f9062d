-- A first-come premium purchase in one statement, inside the request's transaction: the
-- Idempotency-Key's claim, the purchase and the key's answer. The request's commit finishes it
-- (services/wallet/premium/service.py `buy`); nothing here commits.
--   At opening time thousands of residents buy within a minute, and each round trip costs the app
-- CPU (bench/RESULTS.md): the purchase once made about twenty, then five (BEGIN, claim, purchase,
-- answer, COMMIT); this makes three (BEGIN, this, COMMIT).
--   * The key is claimed first; a key claimed before returns that request's hash, status and
--     answer, and nothing else is done (a twin still running is waited for, as the app's own claim
--     waits, and if it rolls back this one runs as the first).
--   * The checks come in the order a lottery application makes them (wallet, campaign, offer,
--     window, stock, limits), then the paying (settle_premium.sql), then the stock, taken last so
--     that a bucket stays locked only from there to the commit.
--   * A refusal is undone with the claim (the block is a subtransaction) and returned as plain
--     columns, for the app to turn into its problem; so is `no_wallet` (the app makes the wallet
--     and asks again).
--   * `stock_busy`: all is done but the stock, because no bucket alone holds the sets and is free
--     (the end of a sale, or a rush); the app takes them in the same transaction, or refuses and
--     the request rolls back.
--   * The key's answer is the purchase's id: the app shapes every answer to the key, first or
--     replayed, from the purchase (services/wallet/premium/endpoints.py), so both are the same text
--     and an API field is changed in Python alone.
-- The living source of this function; migration 0013 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
-- Parameters (no comments inside the list: alembic_utils reads a signature as one line):
--   p_caller: the Idempotency-Key's caller, key and request hash, as shared/idempotency.py makes them
--   p_subject: the buying resident
--   p_start: the bucket to look in first: random, so buyers spread over buckets
--   p_ids: six fresh ids, for settle_premium.sql
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
