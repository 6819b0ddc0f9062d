-- What a refund gives back of a payment's fee goes back to the merchant's fiscal-year total that
-- charging it raised (charge_fee.sql, the other half of the yearly cap): the total of the year the
-- payment was made in, whatever the year of the refund, and only if the payment's plan is capped
-- (uncapped plans keep no total). So the cap limits the fees a merchant keeps paying, and room a
-- refund frees can be charged again. p_fee is what this refund returns (yen and points together,
-- as the fee was charged). The total is locked last, after the refund's own locks (the payment,
-- the wallet's accounts), as a payment's charge locks it after the payer's accounts.
-- The total exists whenever there is fee to return under a capped plan, since the charge wrote
-- it; a missing one is a bug, refused loudly rather than leaving the cap wrong.
-- The living source of this function; migrations hold snapshots of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION wallet.return_fee(p_payment_id uuid, p_fee bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wallet.merchant_fee_years y SET fees_charged = y.fees_charged - p_fee
      FROM wallet.payments p JOIN wallet.fee_plans fp ON fp.id = p.fee_plan_id
     WHERE p.id = p_payment_id AND fp.yearly_cap IS NOT NULL AND p_fee > 0
       AND y.merchant_id = p.merchant_id AND y.fiscal_year = p.fiscal_year;
    IF NOT FOUND AND p_fee > 0 AND EXISTS (
        SELECT 1 FROM wallet.payments p JOIN wallet.fee_plans fp ON fp.id = p.fee_plan_id
         WHERE p.id = p_payment_id AND fp.yearly_cap IS NOT NULL
    ) THEN
        RAISE EXCEPTION 'payment % was charged under a capped plan but its fiscal year has no fee total', p_payment_id;
    END IF;
END
$$;
