"""coupons.claim_coupon_keyed: a claim and its Idempotency-Key's claim in one statement (the
coupon rush of bench/coupon_rush, issue 13: one round trip fewer per claim).

The living source of the function is services/coupons/sql/claim_coupon_keyed.sql; below is a
frozen snapshot of it as of this revision (an alembic_utils entity).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""
from alembic import op
from alembic_utils.pg_function import PGFunction

revision = "0023"
down_revision = "0022"
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
    op.create_entity(CLAIM_COUPON_KEYED)


def downgrade() -> None:
    op.drop_entity(CLAIM_COUPON_KEYED)
