-- Pays for a buyer's sets: a lottery win (services/wallet/premium/service.py `pay_win`), or inside a
-- first-come purchase (buy_premium.sql). Locks the buyer's coin and point accounts, takes the price
-- from coin lots usable at every shop in spending order, re-lots it under the set's rules, posts
-- the premium journal (budget -> the buyer's points, a covered debit) with its point lots, and
-- records the purchase and its lots. It says how it ended (ok, account_inactive, insufficient); a
-- refusal has written nothing (it holds the two accounts' locks), and the caller turns it into its problem.
-- The living source of this function; migration 0013 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
-- Parameters (no comments inside the list: alembic_utils reads a signature as one line):
--   p_application_id: the lottery win paid for, or NULL (first-come)
--   p_yen: the buyer's coin and point accounts
--   p_ids: six fresh ids: two entries, then the four lots the sets create
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
