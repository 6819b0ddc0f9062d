-- A resident claims one unit of a coupon, in one statement inside the request's transaction (the
-- request's commit finishes it; nothing here commits). When a coupon opens, thousands of residents
-- claim within seconds: each round trip costs the app CPU, so the checks, the per-resident limit,
-- the stock and the claim are one call (services/coupons/service.py `claim`).
--   * The checks (coupon of the region, active, in its window, stock left) read without a lock, so
--     a sold-out coupon refuses at the cost of one index scan and writes nothing.
--   * The limit: the resident's holding is raised by a conditional upsert, exact under any
--     concurrency (a resident's twin claims queue on that one row).
--   * The stock, taken last so that a bucket stays locked only from there to the commit: first a
--     bucket no one else holds (SKIP LOCKED, starting at p_start, random per claim, so claims spread
--     over buckets); if every bucket with stock left is held, wait for the lowest and look again, so
--     a claim is refused for stock only when no bucket has any left: exactly stock-many succeed.
--     A row whose recheck fails (emptied by a claim that committed meanwhile) stays locked by the
--     statement that met it (PostgreSQL keeps such locks), so each attempt that finds nothing is a
--     subtransaction, undone with those locks: a claim waits holding no bucket, and waiters take
--     buckets in one order (the lowest first), so claims never deadlock.
--   * A refusal after the holding was raised is undone with it (the block is a subtransaction) and
--     returned as `outcome`, for the app to turn into its problem.
-- The living source of this function; migration 0018 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
-- Parameters (no comments inside the list: alembic_utils reads a signature as one line):
--   p_start: the bucket to look in first
--   p_code: a fresh code for the shop to scan, kept if the coupon is a free item (the only kind
--     redeemed by a code; others are used by the claim's id, by its holder)
CREATE OR REPLACE FUNCTION coupons.claim_coupon(
    p_region_id uuid,
    p_coupon_id uuid,
    p_subject text,
    p_now timestamptz,
    p_start integer,
    p_claim_id uuid,
    p_code text
) RETURNS TABLE (
    outcome text,               -- ok | not_found | not_active | not_yet_valid | expired | out_of_stock | limit_reached
    name text,
    kind text,
    valid_from timestamptz,
    valid_until timestamptz,
    per_resident_limit bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_coupon coupons.coupons%ROWTYPE;
    v_bucket smallint;
BEGIN
    SELECT * INTO v_coupon FROM coupons.coupons c WHERE c.id = p_coupon_id AND c.region_id = p_region_id;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    name := v_coupon.name;
    kind := v_coupon.kind;
    valid_from := v_coupon.valid_from;
    valid_until := v_coupon.valid_until;
    per_resident_limit := v_coupon.per_resident_limit;
    outcome := CASE
        WHEN v_coupon.status <> 'active' THEN 'not_active'
        WHEN p_now < v_coupon.valid_from THEN 'not_yet_valid'
        WHEN p_now >= v_coupon.valid_until THEN 'expired'
        WHEN NOT EXISTS (SELECT 1 FROM coupons.stock s WHERE s.coupon_id = p_coupon_id AND s.remaining > 0)
            THEN 'out_of_stock'
        ELSE 'ok'
    END;
    IF outcome <> 'ok' THEN
        RETURN NEXT;
        RETURN;
    END IF;
    BEGIN
        INSERT INTO coupons.holdings AS h (coupon_id, subject, region_id, held)
        VALUES (p_coupon_id, p_subject, p_region_id, 1)
        ON CONFLICT (coupon_id, subject) DO UPDATE SET held = h.held + 1 WHERE h.held < v_coupon.per_resident_limit;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'CP001', MESSAGE = 'limit_reached';
        END IF;
        LOOP
            BEGIN
                UPDATE coupons.stock s SET remaining = s.remaining - 1
                 WHERE s.coupon_id = p_coupon_id AND s.bucket = (
                       SELECT f.bucket FROM coupons.stock f
                        WHERE f.coupon_id = p_coupon_id AND f.remaining > 0
                        ORDER BY (f.bucket - p_start + 32768) % 32768
                        LIMIT 1 FOR UPDATE SKIP LOCKED)
                RETURNING s.bucket INTO v_bucket;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'CP002';
                END IF;
                EXIT;
            EXCEPTION WHEN SQLSTATE 'CP002' THEN
                NULL;
            END;
            IF NOT EXISTS (SELECT 1 FROM coupons.stock s WHERE s.coupon_id = p_coupon_id AND s.remaining > 0) THEN
                RAISE EXCEPTION USING ERRCODE = 'CP001', MESSAGE = 'out_of_stock';
            END IF;
            BEGIN
                SELECT f.bucket INTO v_bucket FROM coupons.stock f
                 WHERE f.coupon_id = p_coupon_id AND f.remaining > 0
                 ORDER BY f.bucket
                 LIMIT 1 FOR UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING ERRCODE = 'CP002';
                END IF;
                UPDATE coupons.stock s SET remaining = s.remaining - 1
                 WHERE s.coupon_id = p_coupon_id AND s.bucket = v_bucket;
                EXIT;
            EXCEPTION WHEN SQLSTATE 'CP002' THEN
                NULL;
            END;
        END LOOP;
        INSERT INTO coupons.claims (id, region_id, coupon_id, subject, bucket, code, status, claimed_at)
        VALUES (p_claim_id, p_region_id, p_coupon_id, p_subject, v_bucket,
                CASE WHEN v_coupon.kind = 'free_item' THEN p_code END, 'claimed', p_now);
    EXCEPTION WHEN SQLSTATE 'CP001' THEN
        outcome := SQLERRM;
    END;
    RETURN NEXT;
END
$$;
