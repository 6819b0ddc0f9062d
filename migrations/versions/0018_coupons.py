"""The coupons service's own schema (issue 13, items 1-3): coupons, their stock in buckets, the
residents' holdings (the per-resident limit), claims and redemptions; and coupons.claim_coupon,
a claim in one statement. Nothing here refers to a wallet table: the service reaches the wallet
only through services/wallet/public.py.

The living source of coupons.claim_coupon is services/coupons/sql/claim_coupon.sql; below is a
frozen snapshot of it as of this revision (an alembic_utils entity). It follows 0017 (transit),
the head when it was merged (0015 → 0018 segments → 0017 transit → 0016).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""
from alembic import op
from alembic_utils.pg_function import PGFunction

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS coupons",
    """CREATE TABLE coupons.coupons (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        merchant_id UUID,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        value BIGINT,
        max_discount BIGINT,
        min_spend BIGINT NOT NULL,
        store_ids UUID[],
        valid_from TIMESTAMP WITH TIME ZONE NOT NULL,
        valid_until TIMESTAMP WITH TIME ZONE NOT NULL,
        stock BIGINT NOT NULL,
        per_resident_limit BIGINT NOT NULL,
        audience TEXT NOT NULL,
        terms TEXT NOT NULL,
        image_url TEXT,
        funded_by TEXT NOT NULL,
        sponsor_id UUID,
        status TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_coupons PRIMARY KEY (id),
        CONSTRAINT ck_coupons_kind CHECK (kind IN ('yen_off', 'percent_off', 'fixed_price', 'free_item')),
        CONSTRAINT ck_coupons_status CHECK (status IN ('draft', 'active', 'paused', 'ended')),
        CONSTRAINT ck_coupons_audience CHECK (audience IN ('all')),
        CONSTRAINT ck_coupons_funded_by CHECK (funded_by IN ('shop', 'sponsor')),
        CONSTRAINT ck_coupons_sponsor_named CHECK ((funded_by = 'sponsor') = (sponsor_id IS NOT NULL)),
        CONSTRAINT ck_coupons_value_by_kind CHECK ((kind = 'free_item') = (value IS NULL)),
        CONSTRAINT ck_coupons_max_by_kind CHECK ((kind = 'percent_off') = (max_discount IS NOT NULL)),
        CONSTRAINT ck_coupons_free_item_by_shop CHECK (kind <> 'free_item' OR funded_by = 'shop'),
        CONSTRAINT ck_coupons_window CHECK (valid_from < valid_until),
        CONSTRAINT ck_coupons_counts CHECK (stock > 0 AND per_resident_limit > 0 AND min_spend >= 0)
)""",
    """CREATE INDEX ix_coupons_region_id_status ON coupons.coupons (region_id, status)""",
    """CREATE TABLE coupons.stock (
        coupon_id UUID NOT NULL,
        bucket SMALLINT NOT NULL,
        remaining BIGINT NOT NULL,
        CONSTRAINT pk_stock PRIMARY KEY (coupon_id, bucket),
        CONSTRAINT ck_stock_remaining CHECK (remaining >= 0),
        CONSTRAINT fk_stock_coupon_id_coupons FOREIGN KEY(coupon_id) REFERENCES coupons.coupons (id)
)""",
    """CREATE TABLE coupons.holdings (
        coupon_id UUID NOT NULL,
        subject TEXT NOT NULL,
        region_id UUID NOT NULL,
        held BIGINT NOT NULL,
        CONSTRAINT pk_holdings PRIMARY KEY (coupon_id, subject),
        CONSTRAINT ck_holdings_held CHECK (held >= 0)
)""",
    """CREATE TABLE coupons.claims (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        coupon_id UUID NOT NULL,
        subject TEXT NOT NULL,
        bucket SMALLINT NOT NULL,
        code TEXT,
        status TEXT NOT NULL,
        claimed_at TIMESTAMP WITH TIME ZONE NOT NULL,
        redeemed_at TIMESTAMP WITH TIME ZONE,
        released_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_claims PRIMARY KEY (id),
        CONSTRAINT ck_claims_status CHECK (status IN ('claimed', 'redeemed', 'released'))
)""",
    """CREATE UNIQUE INDEX ix_claims_code ON coupons.claims (code) WHERE code IS NOT NULL""",
    """CREATE INDEX ix_claims_coupon_id ON coupons.claims (coupon_id)""",
    """CREATE INDEX ix_claims_region_id_subject_id ON coupons.claims (region_id, subject, id)""",
    """CREATE TABLE coupons.redemptions (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        coupon_id UUID NOT NULL,
        claim_id UUID NOT NULL,
        merchant_id UUID NOT NULL,
        store_id UUID NOT NULL,
        payment_id UUID,
        price BIGINT,
        discount BIGINT NOT NULL,
        paid BIGINT,
        funded_by TEXT NOT NULL,
        sponsor_id UUID,
        redeemed_by TEXT NOT NULL,
        redeemed_at TIMESTAMP WITH TIME ZONE NOT NULL,
        reversed_at TIMESTAMP WITH TIME ZONE,
        CONSTRAINT pk_redemptions PRIMARY KEY (id),
        CONSTRAINT fk_redemptions_claim_id_claims FOREIGN KEY(claim_id) REFERENCES coupons.claims (id)
)""",
    """CREATE UNIQUE INDEX ix_redemptions_claim_id ON coupons.redemptions (claim_id)""",
    """CREATE UNIQUE INDEX ix_redemptions_payment_id ON coupons.redemptions (payment_id) WHERE payment_id IS NOT NULL""",
    """CREATE INDEX ix_redemptions_region_id_redeemed_at ON coupons.redemptions (region_id, redeemed_at)""",
]

CLAIM_COUPON = PGFunction.from_sql(r"""
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
""")


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    op.create_entity(CLAIM_COUPON)


def downgrade() -> None:
    op.drop_entity(CLAIM_COUPON)
    op.execute("DROP TABLE coupons.redemptions, coupons.claims, coupons.holdings, coupons.stock, coupons.coupons")
