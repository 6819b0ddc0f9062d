"""Value lots, points, merchant classes, campaigns (budget accounts), expiry runs and resident
notices; `wallet.pay` spends lots.

Every resident balance is made of lots (a top-up, a grant, a premium set …), each with its unit,
its restriction to merchant classes, when it may be used and when it expires. Existing balances
become one unrestricted, never-expiring `legacy` lot each. Residents, merchants and the region's
fee-income, campaign-fund and expired accounts get a `point` account beside their yen one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
import re

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Seeded in every region; the operator may add more. `local` classes are Aizu's 地元専用 shops.
DEFAULT_CLASSES = [
    ("shotengai", "Small shop in a shopping street", "商店街の小規模店"),
    ("small_shop", "Other small local shop", "その他の小規模店"),
    ("convenience", "Convenience store", "コンビニエンスストア"),
    ("chain", "Chain store", "チェーン店"),
    ("large_store", "Large store", "大型店"),
]

TABLES = r"""
CREATE TABLE wallet.merchant_classes (
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    code text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{1,31}$'),
    name text NOT NULL,
    name_ja text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (region_id, code)
);

ALTER TABLE wallet.regions ADD COLUMN coin_expiry_months smallint
    CHECK (coin_expiry_months IS NULL OR coin_expiry_months BETWEEN 1 AND 120);

ALTER TABLE wallet.residents ADD COLUMN household text;
CREATE INDEX ix_residents_household ON wallet.residents (region_id, household) WHERE household IS NOT NULL;

CREATE TABLE wallet.campaigns (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    kind text NOT NULL CHECK (kind IN ('premium', 'grant', 'reward')),
    name text NOT NULL,
    name_ja text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'closed')),
    -- Lots the campaign creates: restricted to these merchant classes (NULL: all merchants),
    -- usable from/until (a fixed window), or expiring N months after the month they are created.
    restriction text[],
    usable_from timestamptz,
    usable_until timestamptz,
    expiry_months smallint CHECK (expiry_months IS NULL OR expiry_months BETWEEN 1 AND 120),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    UNIQUE (region_id, name),
    CHECK (usable_until IS NULL OR usable_from IS NULL OR usable_until > usable_from)
);

ALTER TABLE wallet.accounts ADD COLUMN campaign_id uuid REFERENCES wallet.campaigns (id);
ALTER TABLE wallet.accounts DROP CONSTRAINT ck_accounts_owner_matches_kind;
ALTER TABLE wallet.accounts ADD CONSTRAINT ck_accounts_owner_matches_kind CHECK (
    (kind = 'resident') = (resident_id IS NOT NULL)
    AND (kind = 'merchant') = (merchant_id IS NOT NULL)
    AND (kind = 'campaign_budget') = (campaign_id IS NOT NULL));
DROP INDEX wallet.uq_accounts_region_system_kind_unit;
CREATE UNIQUE INDEX uq_accounts_region_system_kind_unit ON wallet.accounts (region_id, kind, unit)
    WHERE resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL;
CREATE UNIQUE INDEX uq_accounts_campaign_unit ON wallet.accounts (campaign_id, unit) WHERE campaign_id IS NOT NULL;

CREATE TABLE wallet.lots (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    account_id uuid NOT NULL REFERENCES wallet.accounts (id),
    unit text NOT NULL CHECK (unit IN ('yen', 'point')),
    source text NOT NULL CHECK (source IN ('legacy', 'topup', 'premium', 'grant', 'reward')),
    campaign_id uuid REFERENCES wallet.campaigns (id),
    journal_id uuid REFERENCES wallet.journals (id),
    restriction text[],
    usable_from timestamptz,
    expires_at timestamptz,
    amount bigint NOT NULL CHECK (amount > 0),
    remaining bigint NOT NULL CHECK (remaining >= 0),
    expired bigint NOT NULL DEFAULT 0 CHECK (expired >= 0),
    created_at timestamptz NOT NULL,
    -- What is left, plus what expired, never exceeds what the lot was; the rest was spent.
    CHECK (remaining + expired <= amount)
);
CREATE INDEX ix_lots_account_live ON wallet.lots (account_id) WHERE remaining > 0;
CREATE INDEX ix_lots_region_expiry ON wallet.lots (region_id, expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX ix_lots_account_id ON wallet.lots (account_id, id);

ALTER TABLE wallet.payments
    ADD COLUMN point_amount bigint NOT NULL DEFAULT 0 CHECK (point_amount >= 0),
    ADD COLUMN fee_point bigint NOT NULL DEFAULT 0 CHECK (fee_point >= 0),
    ADD COLUMN refunded_point bigint NOT NULL DEFAULT 0 CHECK (refunded_point >= 0),
    ADD COLUMN fee_returned_point bigint NOT NULL DEFAULT 0 CHECK (fee_returned_point >= 0),
    ADD CONSTRAINT ck_payments_point_parts CHECK (point_amount <= amount AND fee_point <= fee
        AND refunded_point <= point_amount AND fee_returned_point <= fee_point);
ALTER TABLE wallet.refunds
    ADD COLUMN point_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN fee_returned_point bigint NOT NULL DEFAULT 0,
    ADD COLUMN expired_amount bigint NOT NULL DEFAULT 0;

-- Which lots paid what, in spending order; a refund restores them in reverse.
CREATE TABLE wallet.payment_lots (
    payment_id uuid NOT NULL REFERENCES wallet.payments (id),
    seq integer NOT NULL,
    lot_id uuid NOT NULL REFERENCES wallet.lots (id),
    unit text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    restored bigint NOT NULL DEFAULT 0 CHECK (restored >= 0 AND restored <= amount),
    PRIMARY KEY (payment_id, seq)
);

CREATE TABLE wallet.expiry_runs (
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    as_of date NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'done')),
    lots_expired integer NOT NULL DEFAULT 0,
    yen_expired bigint NOT NULL DEFAULT 0,
    points_expired bigint NOT NULL DEFAULT 0,
    notices integer NOT NULL DEFAULT 0,
    started_by text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    PRIMARY KEY (region_id, as_of)
);

-- What the app shows or pushes to a resident: lots about to expire, lottery results …
CREATE TABLE wallet.notices (
    id uuid PRIMARY KEY,
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    resident_id uuid NOT NULL REFERENCES wallet.residents (id),
    kind text NOT NULL,
    lot_id uuid REFERENCES wallet.lots (id),
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_notices_resident ON wallet.notices (resident_id, id);
CREATE UNIQUE INDEX uq_notices_lot_kind ON wallet.notices (lot_id, kind) WHERE lot_id IS NOT NULL;
"""

BACKFILL = r"""
INSERT INTO wallet.merchant_classes (region_id, code, name, name_ja, created_at)
SELECT r.id, c.code, c.name, c.name_ja, now() FROM wallet.regions r CROSS JOIN (VALUES {classes}) AS c (code, name, name_ja);

ALTER TABLE wallet.merchants ADD COLUMN merchant_class text NOT NULL DEFAULT 'small_shop';
ALTER TABLE wallet.merchants ALTER COLUMN merchant_class DROP DEFAULT;
ALTER TABLE wallet.merchants ADD CONSTRAINT fk_merchants_class
    FOREIGN KEY (region_id, merchant_class) REFERENCES wallet.merchant_classes (region_id, code);

-- A point account beside every yen account of residents, merchants, and the region's fee
-- income, campaign fund (issuance) and expiry sink.
INSERT INTO wallet.accounts (id, region_id, kind, unit, resident_id, merchant_id, status, tracks_balance,
                             may_go_negative, balance, created_at)
SELECT gen_random_uuid(), a.region_id, a.kind, 'point', a.resident_id, a.merchant_id, a.status, a.tracks_balance,
       a.may_go_negative, 0, now()
  FROM wallet.accounts a
 WHERE a.unit = 'yen' AND a.kind IN ('resident', 'merchant', 'fee_income', 'campaign_fund', 'expired');

INSERT INTO wallet.lots (id, region_id, account_id, unit, source, restriction, usable_from, expires_at,
                         amount, remaining, created_at)
SELECT gen_random_uuid(), a.region_id, a.id, a.unit, 'legacy', NULL, NULL, NULL, a.balance, a.balance, now()
  FROM wallet.accounts a WHERE a.kind = 'resident' AND a.balance > 0;
"""

PAY_V2 = r"""
CREATE FUNCTION wallet.pay(
    p_region_id uuid,
    p_account_id uuid,          -- the paying wallet (its yen account), or NULL to find it by p_subject
    p_subject text,
    p_store_id uuid,
    p_amount bigint,
    p_method text,
    p_order_reference text,
    p_card_id uuid,
    p_now timestamptz,
    p_fiscal_year smallint,
    p_payment_id uuid,
    p_journal_id uuid,
    p_entry_ids uuid[]          -- six fresh ids for the entries
) RETURNS TABLE (
    outcome text,               -- ok | no_store | merchant_inactive | account_inactive | insufficient
    balance bigint,             -- yen + points the wallet holds after (ok) or now (refusals)
    eligible bigint,            -- of that, what could pay at this merchant now (refusals)
    account_id uuid,            -- the paying wallet
    merchant_id uuid,
    fee bigint,
    fee_rate_bp smallint,
    fee_plan_id uuid,
    point_amount bigint,
    fee_point bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_account uuid := p_account_id;
    v_points uuid;
    v_merchant uuid;
    v_merchant_status text;
    v_class text;
    v_merchant_yen uuid;
    v_merchant_point uuid;
    v_status text;
    v_total bigint;
    v_eligible bigint;
    v_left bigint := p_amount;
    v_take bigint;
    v_coin bigint := 0;
    v_pts bigint := 0;
    v_lot record;
    v_lot_ids uuid[] := '{}';
    v_lot_units text[] := '{}';
    v_lot_takes bigint[] := '{}';
    v_plan wallet.fee_plans%ROWTYPE;
    v_fee bigint;
    v_fee_pt bigint;
    v_charged bigint;
    v_fee_yen_account uuid;
    v_fee_point_account uuid;
    v_yen_after bigint;
    v_pts_after bigint;
BEGIN
    SELECT s.merchant_id, m.status, m.merchant_class INTO v_merchant, v_merchant_status, v_class
      FROM wallet.stores s JOIN wallet.merchants m ON m.id = s.merchant_id
     WHERE s.id = p_store_id AND s.region_id = p_region_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_store', NULL::bigint, NULL::bigint, NULL::uuid, NULL::uuid, NULL::bigint,
                            NULL::smallint, NULL::uuid, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF v_merchant_status <> 'active' THEN
        RETURN QUERY SELECT 'merchant_inactive', NULL::bigint, NULL::bigint, NULL::uuid, v_merchant, NULL::bigint,
                            NULL::smallint, NULL::uuid, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    IF v_account IS NULL THEN
        SELECT a.id INTO v_account
          FROM wallet.residents r JOIN wallet.accounts a ON a.resident_id = r.id AND a.unit = 'yen'
         WHERE r.region_id = p_region_id AND r.subject = p_subject;
        IF NOT FOUND THEN  -- no wallet yet: nothing to pay with
            RETURN QUERY SELECT 'insufficient', 0::bigint, 0::bigint, NULL::uuid, v_merchant, NULL::bigint,
                                NULL::smallint, NULL::uuid, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
    END IF;
    SELECT p.id INTO v_points FROM wallet.accounts y JOIN wallet.accounts p
        ON p.resident_id = y.resident_id AND p.unit = 'point' WHERE y.id = v_account;

    -- The payer's two accounts, locked in id order as every posting does: the only locks a
    -- payment takes. Their lots change only behind these locks.
    PERFORM 1 FROM wallet.accounts a WHERE a.id IN (v_account, v_points) ORDER BY a.id FOR UPDATE;
    SELECT a.status INTO v_status FROM wallet.accounts a WHERE a.id = v_account;
    SELECT coalesce(sum(l.remaining), 0),
           coalesce(sum(l.remaining) FILTER (WHERE (l.usable_from IS NULL OR l.usable_from <= p_now)
                                               AND (l.expires_at IS NULL OR l.expires_at > p_now)
                                               AND (l.restriction IS NULL OR v_class = ANY (l.restriction))), 0)
      INTO v_total, v_eligible
      FROM wallet.lots l WHERE l.account_id IN (v_account, v_points) AND l.remaining > 0;
    IF v_status <> 'active' OR v_eligible < p_amount THEN
        RETURN QUERY SELECT CASE WHEN v_status = 'active' THEN 'insufficient' ELSE 'account_inactive' END,
                            v_total, v_eligible, v_account, v_merchant, NULL::bigint, NULL::smallint, NULL::uuid,
                            NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    -- Spending order (services/wallet/lots.py documents it): points before coin, earliest expiry
    -- first, restricted before unrestricted, oldest first.
    FOR v_lot IN
        SELECT l.id, l.unit, l.remaining FROM wallet.lots l
         WHERE l.account_id IN (v_account, v_points) AND l.remaining > 0
           AND (l.usable_from IS NULL OR l.usable_from <= p_now)
           AND (l.expires_at IS NULL OR l.expires_at > p_now)
           AND (l.restriction IS NULL OR v_class = ANY (l.restriction))
         ORDER BY l.unit = 'yen', l.expires_at NULLS LAST, l.restriction IS NULL, l.created_at, l.id
    LOOP
        v_take := LEAST(v_lot.remaining, v_left);
        UPDATE wallet.lots SET remaining = remaining - v_take WHERE id = v_lot.id;
        v_lot_ids := v_lot_ids || v_lot.id;
        v_lot_units := v_lot_units || v_lot.unit;
        v_lot_takes := v_lot_takes || v_take;
        IF v_lot.unit = 'yen' THEN v_coin := v_coin + v_take; ELSE v_pts := v_pts + v_take; END IF;
        v_left := v_left - v_take;
        EXIT WHEN v_left = 0;
    END LOOP;

    -- The plan in force now: the merchant's own if it has one, else the region's default.
    SELECT * INTO v_plan FROM wallet.fee_plans fp
     WHERE fp.region_id = p_region_id AND fp.kind = 'payment' AND fp.effective_from <= p_now
       AND (fp.merchant_id = v_merchant OR fp.merchant_id IS NULL)
     ORDER BY fp.merchant_id NULLS LAST, fp.effective_from DESC
     LIMIT 1;
    v_fee := CASE v_plan.rounding
        WHEN 'up' THEN (p_amount * v_plan.rate_bp + 9999) / 10000
        WHEN 'half_up' THEN (p_amount * v_plan.rate_bp + 5000) / 10000
        ELSE (p_amount * v_plan.rate_bp) / 10000
    END;
    -- A yearly cap: lock this merchant's fiscal-year total (only capped plans queue here).
    IF v_plan.yearly_cap IS NOT NULL AND v_fee > 0 THEN
        INSERT INTO wallet.merchant_fee_years (merchant_id, fiscal_year, region_id, fees_charged)
        VALUES (v_merchant, p_fiscal_year, p_region_id, 0) ON CONFLICT DO NOTHING;
        SELECT y.fees_charged INTO v_charged FROM wallet.merchant_fee_years y
         WHERE y.merchant_id = v_merchant AND y.fiscal_year = p_fiscal_year FOR UPDATE;
        v_fee := LEAST(v_fee, GREATEST(v_plan.yearly_cap - v_charged, 0));
        IF v_fee > 0 THEN
            UPDATE wallet.merchant_fee_years y SET fees_charged = y.fees_charged + v_fee
             WHERE y.merchant_id = v_merchant AND y.fiscal_year = p_fiscal_year;
        END IF;
    END IF;
    -- The fee is taken from each unit in proportion to what it paid (points part rounded down).
    v_fee_pt := v_fee * v_pts / p_amount;

    UPDATE wallet.accounts a SET balance = a.balance - v_coin WHERE a.id = v_account RETURNING a.balance INTO v_yen_after;
    IF v_pts > 0 THEN
        UPDATE wallet.accounts a SET balance = a.balance - v_pts WHERE a.id = v_points RETURNING a.balance INTO v_pts_after;
    END IF;

    INSERT INTO wallet.journals (id, region_id, kind, actor, reference, memo, created_at)
    VALUES (p_journal_id, p_region_id, 'payment', 'resident:' || v_account, p_payment_id::text, NULL, p_now);
    IF v_coin > 0 THEN
        INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
        VALUES (p_entry_ids[1], p_journal_id, v_account, p_region_id, 'yen', -v_coin, v_yen_after, p_now);
    END IF;
    IF v_pts > 0 THEN
        INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
        VALUES (p_entry_ids[2], p_journal_id, v_points, p_region_id, 'point', -v_pts, v_pts_after, p_now);
    END IF;
    -- Credits to the merchant and to fee income take no lock: their balance is the sum of entries.
    SELECT a.id INTO v_merchant_yen FROM wallet.accounts a WHERE a.merchant_id = v_merchant AND a.unit = 'yen';
    SELECT a.id INTO v_merchant_point FROM wallet.accounts a WHERE a.merchant_id = v_merchant AND a.unit = 'point';
    IF v_coin - (v_fee - v_fee_pt) > 0 THEN
        INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
        VALUES (p_entry_ids[3], p_journal_id, v_merchant_yen, p_region_id, 'yen', v_coin - (v_fee - v_fee_pt), NULL, p_now);
    END IF;
    IF v_pts - v_fee_pt > 0 THEN
        INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
        VALUES (p_entry_ids[4], p_journal_id, v_merchant_point, p_region_id, 'point', v_pts - v_fee_pt, NULL, p_now);
    END IF;
    IF v_fee > 0 THEN
        SELECT a.id INTO v_fee_yen_account FROM wallet.accounts a
         WHERE a.region_id = p_region_id AND a.kind = 'fee_income' AND a.unit = 'yen'
           AND a.resident_id IS NULL AND a.merchant_id IS NULL AND a.campaign_id IS NULL;
        SELECT a.id INTO v_fee_point_account FROM wallet.accounts a
         WHERE a.region_id = p_region_id AND a.kind = 'fee_income' AND a.unit = 'point'
           AND a.resident_id IS NULL AND a.merchant_id IS NULL AND a.campaign_id IS NULL;
        IF v_fee - v_fee_pt > 0 THEN
            INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
            VALUES (p_entry_ids[5], p_journal_id, v_fee_yen_account, p_region_id, 'yen', v_fee - v_fee_pt, NULL, p_now);
        END IF;
        IF v_fee_pt > 0 THEN
            INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
            VALUES (p_entry_ids[6], p_journal_id, v_fee_point_account, p_region_id, 'point', v_fee_pt, NULL, p_now);
        END IF;
    END IF;
    INSERT INTO wallet.payments (id, region_id, journal_id, resident_account_id, merchant_id, store_id, method,
                                 amount, fee, fee_rate_bp, fee_plan_id, fiscal_year, refunded_amount,
                                 fee_returned, order_reference, card_id, created_at, point_amount, fee_point)
    VALUES (p_payment_id, p_region_id, p_journal_id, v_account, v_merchant, p_store_id, p_method,
            p_amount, v_fee, v_plan.rate_bp, v_plan.id, p_fiscal_year, 0, 0, p_order_reference, p_card_id, p_now,
            v_pts, v_fee_pt);
    INSERT INTO wallet.payment_lots (payment_id, seq, lot_id, unit, amount)
    SELECT p_payment_id, t.seq, t.lot_id, t.unit, t.amount
      FROM unnest(v_lot_ids, v_lot_units, v_lot_takes) WITH ORDINALITY AS t (lot_id, unit, amount, seq);
    RETURN QUERY SELECT 'ok', v_total - p_amount, v_eligible - p_amount, v_account, v_merchant, v_fee,
                        v_plan.rate_bp, v_plan.id, v_pts, v_fee_pt;
END
$$
"""

OLD_PAY_SIGNATURE = "wallet.pay(uuid, uuid, text, uuid, bigint, text, text, uuid, timestamptz, smallint, uuid, uuid, uuid[])"


def _each_statement(sql: str) -> None:
    # asyncpg runs one statement per call; these blocks hold no function bodies, so `;` at a
    # line's end always ends a statement.
    for statement in re.split(r";\s*\n", sql):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _each_statement(TABLES)
    classes = ", ".join(f"('{code}', '{name}', '{name_ja}')" for code, name, name_ja in DEFAULT_CLASSES)
    _each_statement(BACKFILL.format(classes=classes))
    op.execute(f"DROP FUNCTION {OLD_PAY_SIGNATURE}")
    op.execute(PAY_V2)


def downgrade() -> None:
    # Irreversible on purpose: folding lots and points back into plain yen balances would drop
    # the rules (restriction, expiry) residents were promised. Restore a backup instead.
    raise RuntimeError("migration 0004 (value lots) cannot be downgraded; restore a backup taken before it")
