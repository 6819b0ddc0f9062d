-- The fee a merchant is charged on an amount it receives, the one place the choice of plan and
-- the yearly cap are written: wallet.pay (pay.sql) calls it for a payment, and merchant transfers
-- (services/wallet/payments/repository.py `charge_fee`) for the payee of a transfer.
-- p_kind is the plan's kind ('payment' or 'transfer'); p_at is the moment of the charge, which
-- picks the plan in force; p_fiscal_year is p_at's fiscal year (年度, from 1 April, Tokyo), whose
-- total of fees the cap limits. It returns the fee and the plan's id and rate, for the record.
-- The plan is the merchant's own in force at p_at if it has one, else the region's default, and
-- the fee is rounded by that plan (wallet.fee_for). Under a capped plan the merchant's fiscal-year
-- total (wallet.merchant_fee_years) is locked and raised: the charge that reaches the cap pays only
-- what is left under it, later ones nothing. Payments and transfers count in one total, so a
-- merchant pays at most its cap a year whichever way it is paid; refunds give back to it what
-- they return of a fee (return_fee.sql). Uncapped plans never touch the total, so their merchants
-- never queue on it.
-- The caller holds its other locks first (wallet.pay: the payer's accounts), as it always has.
-- A region has its default plans from its creation, so finding none is a bug, refused loudly.
-- The living source of this function; migrations hold snapshots of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION wallet.charge_fee(p_region_id uuid, p_merchant_id uuid, p_kind text, p_amount bigint, p_at timestamp with time zone, p_fiscal_year smallint, OUT fee bigint, OUT plan_id uuid, OUT rate_bp smallint) RETURNS record LANGUAGE plpgsql AS $$
DECLARE
    v_rounding text;
    v_cap bigint;
    v_charged bigint;
BEGIN
    SELECT fp.id, fp.rate_bp, fp.rounding, fp.yearly_cap INTO plan_id, rate_bp, v_rounding, v_cap
      FROM wallet.fee_plans fp
     WHERE fp.region_id = p_region_id AND fp.kind = p_kind AND fp.effective_from <= p_at
       AND (fp.merchant_id = p_merchant_id OR fp.merchant_id IS NULL)
     ORDER BY fp.merchant_id NULLS LAST, fp.effective_from DESC
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'region % has no % fee plan in force at %', p_region_id, p_kind, p_at;
    END IF;
    fee := wallet.fee_for(p_amount, rate_bp, v_rounding);
    IF v_cap IS NOT NULL AND fee > 0 THEN
        INSERT INTO wallet.merchant_fee_years (merchant_id, fiscal_year, region_id, fees_charged)
        VALUES (p_merchant_id, p_fiscal_year, p_region_id, 0) ON CONFLICT DO NOTHING;
        SELECT y.fees_charged INTO v_charged FROM wallet.merchant_fee_years y
         WHERE y.merchant_id = p_merchant_id AND y.fiscal_year = p_fiscal_year FOR UPDATE;
        fee := LEAST(fee, GREATEST(v_cap - v_charged, 0));
        IF fee > 0 THEN
            UPDATE wallet.merchant_fee_years y SET fees_charged = y.fees_charged + fee
             WHERE y.merchant_id = p_merchant_id AND y.fiscal_year = p_fiscal_year;
        END IF;
    END IF;
END
$$;
