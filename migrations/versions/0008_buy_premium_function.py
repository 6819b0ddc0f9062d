"""A first-come premium purchase as one database function, `wallet.buy_premium`, and the paying
for sets it shares with a lottery win's payment, `wallet.settle_premium`.

At opening time thousands of residents buy within a minute; the purchase made about twenty
round trips from the app (wallet, campaign, offer, tallies, locks, lots, journal, purchase, stock),
each with its share of app CPU, so the app, not the database, bounded the rush (bench/RESULTS.md).
Like `wallet.pay` (migration 0004) the function does the whole purchase in one call and says
how it ended; the app turns a refusal into its problem. Only one case comes back to the app: no
bucket alone holds the sets and is free (the end of a sale, or a bucket busy), which the app
settles by locking the offer and every bucket (services/wallet/premium/service.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SETTLE_PREMIUM = r"""
CREATE FUNCTION wallet.settle_premium(
    p_region_id uuid,
    p_campaign_id uuid,
    p_application_id uuid,      -- the lottery win paid for, or NULL (first-come)
    p_actor text,
    p_resident_id uuid,
    p_yen uuid,                 -- the buyer's coin and point accounts
    p_points uuid,
    p_sets integer,
    p_now timestamptz,
    p_purchase_id uuid,
    p_journal_id uuid,
    p_ids uuid[]                -- six fresh ids: two entries, then the four lots the sets create
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

    -- The price from coin usable at every shop, in spending order (services/wallet/lots.py).
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
         ORDER BY l.unit = 'yen', l.expires_at NULLS LAST, l.restriction IS NULL, l.created_at, l.id
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
$$
"""

BUY_PREMIUM = r"""
CREATE FUNCTION wallet.buy_premium(
    p_region_id uuid,
    p_subject text,             -- the buying resident
    p_campaign_id uuid,
    p_sets integer,
    p_now timestamptz,
    p_start integer,            -- the bucket to look in first (random: buyers spread over buckets)
    p_purchase_id uuid,
    p_journal_id uuid,
    p_ids uuid[]                -- six fresh ids (wallet.settle_premium)
) RETURNS TABLE (
    outcome text,               -- ok | stock_busy (all done but the stock: the app takes it) |
                                -- no_wallet | no_campaign | campaign_closed | not_premium | no_offer |
                                -- wrong_mode | not_open | closed | sold_out | person_limit |
                                -- household_limit | account_inactive | insufficient
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
    -- as wallet.settle_premium's:
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
    SELECT r.id, r.household, y.id, p.id INTO resident_id, v_household, v_yen, v_points
      FROM wallet.residents r
      JOIN wallet.accounts y ON y.resident_id = r.id AND y.unit = 'yen'
      JOIN wallet.accounts p ON p.resident_id = r.id AND p.unit = 'point'
     WHERE r.region_id = p_region_id AND r.subject = p_subject;
    IF NOT FOUND THEN  -- the app makes the wallet (a resident's first call) and asks again
        outcome := 'no_wallet';
        RETURN NEXT;
        RETURN;
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
        RETURN NEXT;
        RETURN;
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
        RETURN NEXT;
        RETURN;
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
            RETURN NEXT;
            RETURN;
        END IF;
    END IF;
    per_limit := NULL;

    SELECT * INTO v_settled FROM wallet.settle_premium(
        p_region_id, p_campaign_id, NULL, p_subject, resident_id, v_yen, v_points, p_sets, p_now, p_purchase_id,
        p_journal_id, p_ids);
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
    IF v_settled.outcome <> 'ok' THEN
        outcome := v_settled.outcome;
        RETURN NEXT;
        RETURN;
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
    RETURN NEXT;
END
$$
"""


def upgrade() -> None:
    op.execute(SETTLE_PREMIUM)
    op.execute(BUY_PREMIUM)


def downgrade() -> None:
    op.execute("DROP FUNCTION wallet.buy_premium(uuid, text, uuid, integer, timestamptz, integer, uuid, uuid, uuid[])")
    op.execute("DROP FUNCTION wallet.settle_premium(uuid, uuid, uuid, text, uuid, uuid, uuid, integer, timestamptz,"
               " uuid, uuid, uuid[])")
