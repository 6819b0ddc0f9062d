-- The fee on an amount at a plan's rate (basis points) and rounding: the one place the rounding
-- rule is written. `down` (the default) never charges a merchant a fraction of a yen; `up`
-- charges any started yen; `half_up` rounds a half yen up. Amounts and rates are never negative
-- (CHECK constraints), so integer division is the floor. A rounding it does not know gives NULL,
-- which the NOT NULL fee columns refuse. Used by wallet.charge_fee (charge_fee.sql), which charges
-- payments and merchant transfers alike. A plain SQL expression, so callers' queries inline it.
-- The living source of this function; migrations hold snapshots of it, and
-- tests/wallet/test_database_rules.py fails when the migrated database and this file differ.
CREATE OR REPLACE FUNCTION wallet.fee_for(p_amount bigint, p_rate_bp smallint, p_rounding text) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE p_rounding
    WHEN 'down' THEN p_amount * p_rate_bp / 10000
    WHEN 'up' THEN (p_amount * p_rate_bp + 9999) / 10000
    WHEN 'half_up' THEN (p_amount * p_rate_bp + 5000) / 10000
END
$$;
