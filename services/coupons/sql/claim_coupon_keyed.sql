-- A claim with its Idempotency-Key's claim and its answer, in one statement inside the request's
-- transaction (services/coupons/service.py `claim`): the key is claimed as shared/idempotency.py
-- claims it (a row of platform.idempotency_keys, unique on caller and key, in the transaction of
-- the effect), then coupons.claim_coupon runs, then the answer of a claim made is stored on the
-- key's row. Two round trips fewer per claim than the key's claim, the claim and the answer's
-- UPDATE apart, where a coupon's first thousand claims arrive within a second (bench/RESULTS.md).
--   * The key already claimed (a concurrent twin waits here, on the key's row, until the first
--     commits or rolls back): nothing is claimed; the first request's fingerprint, status and
--     answer are returned (`outcome` 'replay') for the app to answer from, as `Idempotency.replay`.
--   * A claim made: its answer (201, the fields of the app's ClaimOut, services/coupons/schemas.py:
--     the claim as just made, times as PostgreSQL writes them) is stored on the key's row and
--     returned (`first_status`, `first_response`); the app answers every answer to the key, this
--     one and its replays, by reading it through ClaimOut, so a replay is the same text.
--   * A refusal: claim_coupon's row; the request is rolled back, the key's claim with it.
-- The living source of this function; migration 0027 holds a snapshot of it (0023 the one before),
-- and tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
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
DECLARE
    v_claim record;
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
    SELECT * INTO v_claim
      FROM coupons.claim_coupon(p_region_id, p_coupon_id, p_subject, p_now, p_start, p_claim_id, p_code);
    IF v_claim.outcome = 'ok' THEN
        UPDATE platform.idempotency_keys k
           SET status_code = 201,
               response = json_build_object(
                   'id', p_claim_id, 'coupon_id', p_coupon_id, 'coupon_name', v_claim.name, 'kind', v_claim.kind,
                   'state', 'claimed', 'code', CASE WHEN v_claim.kind = 'free_item' THEN p_code END,
                   'valid_from', v_claim.valid_from, 'valid_until', v_claim.valid_until, 'claimed_at', p_now,
                   'redeemed_at', NULL)
         WHERE k.caller = p_caller AND k.key = p_key
        RETURNING k.status_code, k.response INTO first_status, first_response;
    END IF;
    outcome := v_claim.outcome;
    name := v_claim.name;
    kind := v_claim.kind;
    valid_from := v_claim.valid_from;
    valid_until := v_claim.valid_until;
    per_resident_limit := v_claim.per_resident_limit;
    RETURN NEXT;
END
$$;
