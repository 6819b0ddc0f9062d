"""coupons.claim_coupon_keyed stores the answer of a claim made itself (the coupon rush of
bench/coupon_rush, issue 13): the key's claim, the claim and its answer in one statement, one
round trip fewer per claim than the answer's own UPDATE after it.

The living source of the function is services/coupons/sql/claim_coupon_keyed.sql; below is a
frozen snapshot of it as of this revision (an alembic_utils entity), and the one of 0023 to go
back to.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-02
"""
from alembic import op
from alembic_utils.pg_function import PGFunction

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

CLAIM_COUPON_KEYED = PGFunction.from_sql(r"""
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
""")

CLAIM_COUPON_KEYED_0023 = PGFunction.from_sql(r"""
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
""")


def upgrade() -> None:
    op.replace_entity(CLAIM_COUPON_KEYED)


def downgrade() -> None:
    op.replace_entity(CLAIM_COUPON_KEYED_0023)
