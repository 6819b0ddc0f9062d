"""Bundles (issue 13, item 5) and coupons for a segment (items 1 and 6):

- `coupons.coupons.segment_id`: a coupon's audience may be a segment's residents (`segment`),
  checked live at listing and claim (services/coupons/audiences.py).
- `coupons.bundles`, `bundle_parts`, `bundle_claims`: the operator's bundles of coupons and an
  optional bus ticket, and residents' claims of them (one each).
- `coupons.tickets`: a ticket is bought (`funded_by` resident, its payment) or granted in a
  bundle (`bundle_claim_id`), given by the bus operator (fare 0) or paid for by a sponsor
  (`sponsor_id`, `sponsor_journal_id`); `payment_id` is therefore nullable.
- `wallet.statement_lines`: a sponsor's outright payment to a merchant (`sponsor_payment`
  journals, wallet public `sponsor_pays`) is a statement line of its own kind. Its living source
  is services/wallet/payments/sql/statement_lines.sql; this is a frozen snapshot of it.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import context, op
from alembic.script import ScriptDirectory

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE coupons.coupons ADD COLUMN segment_id UUID",
    "ALTER TABLE coupons.coupons DROP CONSTRAINT ck_coupons_audience",
    "ALTER TABLE coupons.coupons ADD CONSTRAINT ck_coupons_audience CHECK (audience IN ('all', 'segment'))",
    (
        "ALTER TABLE coupons.coupons ADD CONSTRAINT ck_coupons_segment_named"
        " CHECK ((audience = 'segment') = (segment_id IS NOT NULL))"
    ),
    """CREATE TABLE coupons.bundles (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        name TEXT NOT NULL,
        terms TEXT NOT NULL,
        audience TEXT NOT NULL,
        segment_id UUID,
        starts_at TIMESTAMP WITH TIME ZONE NOT NULL,
        ends_at TIMESTAMP WITH TIME ZONE NOT NULL,
        product_id UUID,
        rider_category TEXT,
        ticket_funded_by TEXT,
        sponsor_id UUID,
        status TEXT NOT NULL,
        distributed_at TIMESTAMP WITH TIME ZONE,
        segment_version INTEGER,
        recipients INTEGER,
        created_by TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_bundles PRIMARY KEY (id),
        CONSTRAINT ck_bundles_status CHECK (status IN ('draft', 'distributed', 'ended')),
        CONSTRAINT ck_bundles_audience CHECK (audience IN ('all', 'segment')),
        CONSTRAINT ck_bundles_segment_named CHECK ((audience = 'segment') = (segment_id IS NOT NULL)),
        CONSTRAINT ck_bundles_window CHECK (starts_at < ends_at),
        CONSTRAINT ck_bundles_ticket_whole CHECK ((product_id IS NULL) = (rider_category IS NULL)
            AND (product_id IS NULL) = (ticket_funded_by IS NULL)),
        CONSTRAINT ck_bundles_ticket_funded_by CHECK (ticket_funded_by IN ('operator', 'sponsor')),
        CONSTRAINT ck_bundles_sponsor_named CHECK ((ticket_funded_by = 'sponsor') = (sponsor_id IS NOT NULL)),
        CONSTRAINT ck_bundles_distribution_recorded CHECK ((distributed_at IS NULL) = (recipients IS NULL)),
        CONSTRAINT ck_bundles_distributed CHECK (status <> 'distributed' OR distributed_at IS NOT NULL)
)""",
    "CREATE INDEX ix_bundles_region_id_status ON coupons.bundles (region_id, status)",
    """CREATE TABLE coupons.bundle_parts (
        bundle_id UUID NOT NULL,
        coupon_id UUID NOT NULL,
        region_id UUID NOT NULL,
        position SMALLINT NOT NULL,
        CONSTRAINT pk_bundle_parts PRIMARY KEY (bundle_id, coupon_id),
        CONSTRAINT uq_bundle_parts_region_id_bundle_id_position UNIQUE (region_id, bundle_id, position),
        CONSTRAINT fk_bundle_parts_bundle_id_bundles FOREIGN KEY(bundle_id) REFERENCES coupons.bundles (id)
)""",
    """CREATE TABLE coupons.bundle_claims (
        id UUID NOT NULL,
        region_id UUID NOT NULL,
        bundle_id UUID NOT NULL,
        subject TEXT NOT NULL,
        claimed_at TIMESTAMP WITH TIME ZONE NOT NULL,
        claim_ids UUID[] NOT NULL,
        ticket_id UUID,
        CONSTRAINT pk_bundle_claims PRIMARY KEY (id),
        CONSTRAINT uq_bundle_claims_region_id_bundle_id_subject UNIQUE (region_id, bundle_id, subject),
        CONSTRAINT fk_bundle_claims_bundle_id_bundles FOREIGN KEY(bundle_id) REFERENCES coupons.bundles (id)
)""",
    "CREATE INDEX ix_bundle_claims_region_id_subject_id ON coupons.bundle_claims (region_id, subject, id)",
    "CREATE INDEX ix_bundle_claims_region_id_claimed_at ON coupons.bundle_claims (region_id, claimed_at)",
    # Every ticket so far was bought.
    "ALTER TABLE coupons.tickets ADD COLUMN funded_by TEXT NOT NULL DEFAULT 'resident'",
    "ALTER TABLE coupons.tickets ALTER COLUMN funded_by DROP DEFAULT",
    "ALTER TABLE coupons.tickets ALTER COLUMN payment_id DROP NOT NULL",
    (
        "ALTER TABLE coupons.tickets ADD COLUMN sponsor_id UUID, ADD COLUMN sponsor_journal_id UUID,"
        " ADD COLUMN bundle_claim_id UUID"
    ),
    "ALTER TABLE coupons.tickets ADD CONSTRAINT ck_tickets_funded_by CHECK (funded_by IN ('resident', 'operator', 'sponsor'))",
    (
        "ALTER TABLE coupons.tickets ADD CONSTRAINT ck_tickets_bought_by_payment"
        " CHECK ((funded_by = 'resident') = (payment_id IS NOT NULL))"
    ),
    (
        "ALTER TABLE coupons.tickets ADD CONSTRAINT ck_tickets_granted_in_bundle"
        " CHECK ((funded_by = 'resident') = (bundle_claim_id IS NULL))"
    ),
    (
        "ALTER TABLE coupons.tickets ADD CONSTRAINT ck_tickets_sponsor_paid CHECK ((funded_by = 'sponsor') = (sponsor_id IS NOT NULL)"
        " AND (sponsor_id IS NULL) = (sponsor_journal_id IS NULL))"
    ),
    "ALTER TABLE coupons.tickets ADD CONSTRAINT ck_tickets_operator_gives_fare CHECK (funded_by <> 'operator' OR fare = 0)",
    "CREATE INDEX ix_tickets_bundle_claim_id ON coupons.tickets (bundle_claim_id) WHERE bundle_claim_id IS NOT NULL",
]

STATEMENT_LINES = r"""
CREATE OR REPLACE VIEW wallet.statement_lines AS
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
-- Merchant-to-merchant transfers, out of the payer and into the payee (who bears the fee),
-- payouts to the merchant's bank account, and a sponsor's payments to a merchant for what it gave
-- a resident on the sponsor's account (a bus fare in a bundle): no fee, no payment.
SELECT j.id, j.region_id, a.merchant_id, e.unit,
       CASE WHEN j.kind IN ('payout', 'sponsor_payment') THEN j.kind
            WHEN e.amount < 0 THEN 'transfer_out' ELSE 'transfer_in' END,
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
 WHERE j.kind IN ('transfer', 'payout', 'sponsor_payment')
"""


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    op.execute(STATEMENT_LINES)


def _frozen(revision_id: str, name: str) -> str:
    """A definition as an earlier migration froze it."""
    script = ScriptDirectory.from_config(context.config).get_revision(revision_id)
    assert script is not None and script.module is not None
    return getattr(script.module, name)


def downgrade() -> None:
    # A granted ticket and a sponsor's payment have no place in the schema before this one:
    # going back would lose them (and the yen the sponsor paid), so it is refused while any exist.
    granted = op.get_bind().execute(sa.text(
        "SELECT (SELECT count(*) FROM coupons.tickets WHERE payment_id IS NULL)"
        " + (SELECT count(*) FROM wallet.journals WHERE kind = 'sponsor_payment')"
    )).scalar_one()
    if granted:
        raise RuntimeError(f"{granted} granted ticket(s) or sponsor payment(s) exist; 0019 cannot be undone.")
    op.execute(_frozen("0014", "STATEMENT_LINES").replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
    op.execute("DROP INDEX coupons.ix_tickets_bundle_claim_id")
    op.execute(
        "ALTER TABLE coupons.tickets DROP CONSTRAINT ck_tickets_operator_gives_fare, DROP CONSTRAINT ck_tickets_sponsor_paid,"
        " DROP CONSTRAINT ck_tickets_granted_in_bundle, DROP CONSTRAINT ck_tickets_bought_by_payment,"
        " DROP CONSTRAINT ck_tickets_funded_by"
    )
    op.execute(
        "ALTER TABLE coupons.tickets ALTER COLUMN payment_id SET NOT NULL, DROP COLUMN bundle_claim_id,"
        " DROP COLUMN sponsor_journal_id, DROP COLUMN sponsor_id, DROP COLUMN funded_by"
    )
    op.execute("DROP TABLE coupons.bundle_claims, coupons.bundle_parts, coupons.bundles")
    op.execute("UPDATE coupons.coupons SET audience = 'all', segment_id = NULL WHERE audience = 'segment'")
    op.execute("ALTER TABLE coupons.coupons DROP CONSTRAINT ck_coupons_segment_named, DROP CONSTRAINT ck_coupons_audience")
    op.execute("ALTER TABLE coupons.coupons ADD CONSTRAINT ck_coupons_audience CHECK (audience IN ('all'))")
    op.execute("ALTER TABLE coupons.coupons DROP COLUMN segment_id")
