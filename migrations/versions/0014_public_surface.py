"""What the wallet's public surface (services/wallet/public.py) needs: sponsors and their yen
budgets, discounts on payments, the merchant on each refund, and the merchants' statement lines.

- `sponsors`: a city campaign (or any backer) that pays shops the discounts it funds. Its budget
  is an account of kind `sponsor_budget` in yen, owned through `accounts.sponsor_id`, funded from
  the region's yen campaign fund by a `funding` journal and debited by one conditional update, so
  it can never go negative. The unique index of the region's own accounts leaves sponsor budgets
  out, as it already leaves out campaign budgets.
- `payment_discounts`: a payment made at a reduced price: the price, the discount, who funded it
  (the shop, or a sponsor whose `sponsor_credit` journal paid the shop the discount) and how much
  of a sponsor's credit refunds have reversed so far.
- `refunds.merchant_id` (from the payment, for refunds made before) so that a refund is found by
  merchant and by its own date; `refunds.sponsor_reversed` and `sponsor_journal_id`: the share of
  a sponsor's discount a refund gave back to the sponsor, by its own `sponsor_reversal` journal.
- `statement_lines`: a read-only view of every movement of a merchant's balance. Its living
  source is services/wallet/payments/sql/statement_lines.sql; this is a frozen snapshot of it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE wallet.sponsors (
        id uuid CONSTRAINT pk_sponsors PRIMARY KEY,
        region_id uuid NOT NULL CONSTRAINT fk_sponsors_region_id_regions REFERENCES wallet.regions (id),
        name text NOT NULL,
        name_ja text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT uq_sponsors_region_id_name UNIQUE (region_id, name)
    )""",
    """ALTER TABLE wallet.accounts ADD COLUMN sponsor_id uuid
        CONSTRAINT fk_accounts_sponsor_id_sponsors REFERENCES wallet.sponsors (id)""",
    """ALTER TABLE wallet.accounts ADD CONSTRAINT ck_accounts_sponsor_matches_kind
        CHECK ((kind = 'sponsor_budget') = (sponsor_id IS NOT NULL))""",
    "CREATE UNIQUE INDEX uq_accounts_sponsor_unit ON wallet.accounts (sponsor_id, unit) WHERE sponsor_id IS NOT NULL",
    "DROP INDEX wallet.uq_accounts_region_system_kind_unit",
    """CREATE UNIQUE INDEX uq_accounts_region_system_kind_unit ON wallet.accounts (region_id, kind, unit)
        WHERE resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL AND sponsor_id IS NULL""",
    """CREATE TABLE wallet.payment_discounts (
        payment_id uuid CONSTRAINT pk_payment_discounts PRIMARY KEY
            CONSTRAINT fk_payment_discounts_payment_id_payments REFERENCES wallet.payments (id),
        region_id uuid NOT NULL CONSTRAINT fk_payment_discounts_region_id_regions REFERENCES wallet.regions (id),
        merchant_id uuid NOT NULL CONSTRAINT fk_payment_discounts_merchant_id_merchants REFERENCES wallet.merchants (id),
        price bigint NOT NULL,
        discount bigint NOT NULL,
        funded_by text NOT NULL,
        sponsor_id uuid CONSTRAINT fk_payment_discounts_sponsor_id_sponsors REFERENCES wallet.sponsors (id),
        credit_journal_id uuid CONSTRAINT fk_payment_discounts_credit_journal_id_journals REFERENCES wallet.journals (id),
        reversed bigint NOT NULL DEFAULT 0,
        reference text,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT ck_payment_discounts_amounts CHECK (discount > 0 AND price > discount),
        CONSTRAINT ck_payment_discounts_funded_by CHECK (funded_by IN ('shop', 'sponsor')),
        CONSTRAINT ck_payment_discounts_sponsor CHECK (
            (funded_by = 'sponsor') = (sponsor_id IS NOT NULL) AND (sponsor_id IS NULL) = (credit_journal_id IS NULL)),
        CONSTRAINT ck_payment_discounts_reversed CHECK (reversed BETWEEN 0 AND discount AND (funded_by = 'sponsor' OR reversed = 0))
    )""",
    "CREATE INDEX ix_payment_discounts_merchant_id_payment_id ON wallet.payment_discounts (merchant_id, payment_id)",
    """ALTER TABLE wallet.refunds ADD COLUMN merchant_id uuid
        CONSTRAINT fk_refunds_merchant_id_merchants REFERENCES wallet.merchants (id)""",
    "UPDATE wallet.refunds r SET merchant_id = p.merchant_id FROM wallet.payments p WHERE p.id = r.payment_id",
    "ALTER TABLE wallet.refunds ALTER COLUMN merchant_id SET NOT NULL",
    "CREATE INDEX ix_refunds_merchant_id_id ON wallet.refunds (merchant_id, id)",
    """ALTER TABLE wallet.refunds
        ADD COLUMN sponsor_reversed bigint NOT NULL DEFAULT 0,
        ADD COLUMN sponsor_journal_id uuid CONSTRAINT fk_refunds_sponsor_journal_id_journals REFERENCES wallet.journals (id),
        ADD CONSTRAINT ck_refunds_sponsor_reversed CHECK (
            sponsor_reversed >= 0 AND (sponsor_reversed > 0) = (sponsor_journal_id IS NOT NULL))""",
]

STATEMENT_LINES = r"""
CREATE VIEW wallet.statement_lines AS
-- Payments: the price the resident paid, per unit it was paid in, and the fee on it.
SELECT p.journal_id, p.region_id, p.merchant_id, u.unit, 'payment'::text AS kind,
       u.amount, u.fee, u.amount - u.fee AS net, p.created_at AS occurred_at,
       p.id AS payment_id, NULL::uuid AS refund_id, NULL::uuid AS counterparty_merchant_id
  FROM wallet.payments p
 CROSS JOIN LATERAL (VALUES ('yen', p.amount - p.point_amount, p.fee - p.fee_point),
                            ('point', p.point_amount, p.fee_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- Refunds, on their own date: what went back, less the fee returned.
SELECT r.journal_id, r.region_id, r.merchant_id, u.unit, 'refund',
       -u.amount, -u.fee, u.fee - u.amount, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 CROSS JOIN LATERAL (VALUES ('yen', r.amount - r.point_amount, r.fee_returned - r.fee_returned_point),
                            ('point', r.point_amount, r.fee_returned_point)) AS u (unit, amount, fee)
 WHERE u.amount > 0
UNION ALL
-- A sponsor's budget pays the shop the discount it funded.
SELECT d.credit_journal_id, d.region_id, d.merchant_id, 'yen', 'sponsor_credit',
       d.discount, 0, d.discount, d.created_at,
       d.payment_id, NULL, NULL
  FROM wallet.payment_discounts d
 WHERE d.credit_journal_id IS NOT NULL
UNION ALL
-- A refund gives the sponsor back its share of the discount.
SELECT r.sponsor_journal_id, r.region_id, r.merchant_id, 'yen', 'sponsor_reversal',
       -r.sponsor_reversed, 0, -r.sponsor_reversed, r.created_at,
       r.payment_id, r.id, NULL
  FROM wallet.refunds r
 WHERE r.sponsor_journal_id IS NOT NULL
UNION ALL
-- Merchant-to-merchant transfers, out of the payer and into the payee (who bears the fee), and
-- payouts to the merchant's bank account.
SELECT j.id, j.region_id, a.merchant_id, e.unit,
       CASE WHEN j.kind = 'payout' THEN 'payout' WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END,
       e.amount + coalesce(f.fee, 0), coalesce(f.fee, 0), e.amount, j.created_at,
       NULL, NULL, o.merchant_id
  FROM wallet.journals j
  JOIN wallet.entries e ON e.journal_id = j.id
  JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'merchant'
  LEFT JOIN LATERAL (
        SELECT sum(fe.amount)::bigint AS fee FROM wallet.entries fe
          JOIN wallet.accounts fa ON fa.id = fe.account_id AND fa.kind = 'fee_income'
         WHERE fe.journal_id = j.id AND fe.unit = e.unit AND e.amount > 0
  ) f ON true
  LEFT JOIN LATERAL (
        SELECT oa.merchant_id FROM wallet.entries oe
          JOIN wallet.accounts oa ON oa.id = oe.account_id AND oa.kind = 'merchant'
         WHERE oe.journal_id = j.id AND oe.account_id <> e.account_id
         LIMIT 1
  ) o ON true
 WHERE j.kind IN ('transfer', 'payout')
"""


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    op.execute(STATEMENT_LINES)


def downgrade() -> None:
    op.execute("DROP VIEW wallet.statement_lines")
    op.execute("ALTER TABLE wallet.refunds DROP COLUMN sponsor_journal_id, DROP COLUMN sponsor_reversed, DROP COLUMN merchant_id")
    op.execute("DROP TABLE wallet.payment_discounts")
    op.execute("DROP INDEX wallet.uq_accounts_region_system_kind_unit")
    op.execute("DROP INDEX wallet.uq_accounts_sponsor_unit")
    op.execute("ALTER TABLE wallet.accounts DROP COLUMN sponsor_id")
    op.execute(
        "CREATE UNIQUE INDEX uq_accounts_region_system_kind_unit ON wallet.accounts (region_id, kind, unit) "
        "WHERE resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL"
    )
    op.execute("DROP TABLE wallet.sponsors")
