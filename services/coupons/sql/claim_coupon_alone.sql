-- A claim with its Idempotency-Key's claim and its answer, as one statement on its own: outside
-- any transaction, so that the statement commits by itself (services/coupons/service.py
-- `claim_at_once`, the claim answered before FastAPI's routing and dependencies, endpoints.py
-- `answer_claim_early`). It is coupons.claim_coupon_keyed (sql/claim_coupon_keyed.sql), with the one
-- thing a request's rollback did for it done here instead:
--   * A refusal: claim_coupon_keyed's row, and the key's claim undone (its row deleted), as the
--     request's rollback undoes it, so that a retry with the key runs as the first (a concurrent
--     twin waiting on the key's row then finds it gone and claims it). claim_coupon undoes its own
--     effects of a refusal (its block is a subtransaction).
--   * A claim made, or a replay: claim_coupon_keyed's row, unchanged.
-- No BEGIN or COMMIT round trip, and the stock bucket is locked only for the statement itself.
-- The living source of this function; migration 0031 holds a snapshot of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION coupons.claim_coupon_alone(
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
    v_made record;
BEGIN
    SELECT * INTO v_made
      FROM coupons.claim_coupon_keyed(p_caller, p_key, p_request_hash, p_region_id, p_coupon_id, p_subject,
                                      p_now, p_start, p_claim_id, p_code);
    IF v_made.outcome NOT IN ('ok', 'replay') THEN
        DELETE FROM platform.idempotency_keys k WHERE k.caller = p_caller AND k.key = p_key;
    END IF;
    outcome := v_made.outcome;
    name := v_made.name;
    kind := v_made.kind;
    valid_from := v_made.valid_from;
    valid_until := v_made.valid_until;
    per_resident_limit := v_made.per_resident_limit;
    first_hash := v_made.first_hash;
    first_status := v_made.first_status;
    first_response := v_made.first_response;
    RETURN NEXT;
END
$$;
