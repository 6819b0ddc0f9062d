"""coupons.claim_coupon_alone: a coupon's claim, its Idempotency-Key's claim and its answer as one
statement outside any transaction (the claim answered before FastAPI's routing and dependencies,
bench/coupon_rush, issue 13): coupons.claim_coupon_keyed, with the key's claim undone on a
refusal by the function itself, as a request's rollback undoes it.

The living source of the function is services/coupons/sql/claim_coupon_alone.sql; below is a
frozen snapshot of it as of this revision (an alembic_utils entity).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03
"""
from alembic import op
from alembic_utils.pg_function import PGFunction

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

CLAIM_COUPON_ALONE = PGFunction.from_sql(r"""
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
""")


def upgrade() -> None:
    op.create_entity(CLAIM_COUPON_ALONE)


def downgrade() -> None:
    op.drop_entity(CLAIM_COUPON_ALONE)
