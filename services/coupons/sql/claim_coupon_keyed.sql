-- A claim with its Idempotency-Key's claim, in one statement inside the request's transaction
-- (services/coupons/service.py `claim`): the key is claimed as shared/idempotency.py claims it
-- (a row of platform.idempotency_keys, unique on caller and key, in the transaction of the
-- effect), then coupons.claim_coupon runs. One round trip fewer per claim, where a coupon's
-- first thousand claims arrive within a second.
--   * The key already claimed (a concurrent twin waits here, on the key's row, until the first
--     commits or rolls back): nothing is claimed; the first request's fingerprint, status and
--     answer are returned (`outcome` 'replay') for the app to answer from, as `Idempotency.replay`.
--   * Otherwise claim_coupon's row, whatever its outcome; the app stores the answer of a claim
--     made (`Idempotency.respond`) and a refusal rolls the request back, the key's claim with it.
-- The living source of this function; migration 0019 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION coupons.claim_coupon_keyed(
    p_caller text,
    p_key text,
    p_request_hash text,
    p_region_id uuid,
    p_coupon_id uuid,
    p_subject text,
    p_now timestamptz,
    p_start integer,
    p_claim_id uuid,
    p_code text
) RETURNS TABLE (
    outcome text,
    name text,
    kind text,
    valid_from timestamptz,
    valid_until timestamptz,
    per_resident_limit bigint,
    first_hash text,
    first_status smallint,
    first_response json
) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO platform.idempotency_keys (caller, key, request_hash, created_at)
    VALUES (p_caller, p_key, p_request_hash, p_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT 'replay'::text, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz, NULL::bigint,
                   k.request_hash, k.status_code, k.response
              FROM platform.idempotency_keys k
             WHERE k.caller = p_caller AND k.key = p_key;
        RETURN;
    END IF;
    RETURN QUERY
        SELECT c.outcome, c.name, c.kind, c.valid_from, c.valid_until, c.per_resident_limit,
               NULL::text, NULL::smallint, NULL::json
          FROM coupons.claim_coupon(p_region_id, p_coupon_id, p_subject, p_now, p_start, p_claim_id, p_code) c;
END
$$;
