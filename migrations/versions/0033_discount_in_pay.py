"""A payment's discount is recorded by `wallet.pay` itself (issue 13, bench/coupon_rush): a payment
with a coupon took a statement of its own to write its `wallet.payment_discounts` row after the
payment; now the function writes it, given the discount, who funds it, the sponsor and the
journal that pays the shop, so a payment with a coupon is one round trip fewer.

- `wallet.pay` replaced, with six more arguments (NULL: no discount). The same payment, the same
  locks in the same order; the record after the payment's rows.
- `fk_payment_discounts_credit_journal_id_journals` is checked at the commit: the record names the
  sponsor's credit journal, which the wallet posts right after the function, in the same
  transaction (a refusal there ends the transaction, record and all).

The living source is services/wallet/payments/sql/pay.sql; below is a frozen snapshot of it as of
this revision (an alembic_utils entity).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-04
"""
from alembic import context, op
from alembic.script import ScriptDirectory
from alembic_utils.pg_function import PGFunction

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

PAY = PGFunction.from_sql(r"""
CREATE OR REPLACE FUNCTION wallet.pay(p_region_id uuid, p_account_id uuid, p_subject text, p_store_id uuid, p_amount bigint, p_method text, p_order_reference text, p_card_id uuid, p_now timestamp with time zone, p_fiscal_year smallint, p_payment_id uuid, p_journal_id uuid, p_entry_ids uuid[], p_discount bigint, p_discount_funder text, p_sponsor_id uuid, p_credit_journal_id uuid, p_discount_reference text, p_discount_by text) RETURNS TABLE (
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
    v_fee bigint;
    v_fee_plan uuid;
    v_fee_rate smallint;
    v_fee_pt bigint;
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

    -- In spending order (services/wallet/ledger/sql/spending_key.sql says which and why).
    FOR v_lot IN
        SELECT l.id, l.unit, l.remaining FROM wallet.lots l
         WHERE l.account_id IN (v_account, v_points) AND l.remaining > 0
           AND (l.usable_from IS NULL OR l.usable_from <= p_now)
           AND (l.expires_at IS NULL OR l.expires_at > p_now)
           AND (l.restriction IS NULL OR v_class = ANY (l.restriction))
         ORDER BY wallet.spending_key(l)
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

    -- The fee: the plan in force now and, under a capped plan, the merchant's fiscal-year total,
    -- locked after the payer's accounts (charge_fee.sql; merchant transfers charge by it too).
    SELECT c.fee, c.plan_id, c.rate_bp INTO v_fee, v_fee_plan, v_fee_rate
      FROM wallet.charge_fee(p_region_id, v_merchant, 'payment', p_amount, p_now, p_fiscal_year) c;
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
        -- The region's own accounts: the whole predicate of uq_accounts_region_system_kind_unit,
        -- so that its index finds them (without `sponsor_id IS NULL` it cannot be used).
        SELECT a.id INTO v_fee_yen_account FROM wallet.accounts a
         WHERE a.region_id = p_region_id AND a.kind = 'fee_income' AND a.unit = 'yen'
           AND a.resident_id IS NULL AND a.merchant_id IS NULL AND a.campaign_id IS NULL AND a.sponsor_id IS NULL;
        SELECT a.id INTO v_fee_point_account FROM wallet.accounts a
         WHERE a.region_id = p_region_id AND a.kind = 'fee_income' AND a.unit = 'point'
           AND a.resident_id IS NULL AND a.merchant_id IS NULL AND a.campaign_id IS NULL AND a.sponsor_id IS NULL;
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
            p_amount, v_fee, v_fee_rate, v_fee_plan, p_fiscal_year, 0, 0, p_order_reference, p_card_id, p_now,
            v_pts, v_fee_pt);
    INSERT INTO wallet.payment_lots (payment_id, seq, lot_id, unit, amount)
    SELECT p_payment_id, t.seq, t.lot_id, t.unit, t.amount
      FROM unnest(v_lot_ids, v_lot_units, v_lot_takes) WITH ORDINALITY AS t (lot_id, unit, amount, seq);
    IF p_discount IS NOT NULL THEN
        INSERT INTO wallet.payment_discounts (payment_id, region_id, merchant_id, price, discount, funded_by, sponsor_id,
                                              credit_journal_id, reversed, reference, created_by, created_at)
        VALUES (p_payment_id, p_region_id, v_merchant, p_amount + p_discount, p_discount, p_discount_funder,
                p_sponsor_id, p_credit_journal_id, 0, p_discount_reference, p_discount_by, p_now);
    END IF;
    RETURN QUERY SELECT 'ok', v_total - p_amount, v_eligible - p_amount, v_account, v_merchant, v_fee,
                        v_fee_rate, v_fee_plan, v_pts, v_fee_pt;
END
$$
""")

FK = "fk_payment_discounts_credit_journal_id_journals"


def _frozen(revision_id: str, name: str) -> PGFunction:
    """A definition as an earlier migration froze it."""
    script = ScriptDirectory.from_config(context.config).get_revision(revision_id)
    assert script is not None and script.module is not None
    return getattr(script.module, name)


def upgrade() -> None:
    # A new signature is a new function: the old one is dropped, not left beside it.
    op.drop_entity(_frozen("0015", "PAY"))
    op.create_entity(PAY)
    op.execute(f"ALTER TABLE wallet.payment_discounts ALTER CONSTRAINT {FK} DEFERRABLE INITIALLY DEFERRED")


def downgrade() -> None:
    op.execute(f"ALTER TABLE wallet.payment_discounts ALTER CONSTRAINT {FK} NOT DEFERRABLE")
    op.drop_entity(PAY)
    op.create_entity(_frozen("0015", "PAY"))
