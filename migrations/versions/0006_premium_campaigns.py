"""Premium campaigns (プレミアム付き): offers, purchases, lottery applications and draws.

An offer belongs to one premium campaign. First-come stock is split into buckets so that
concurrent buyers do not queue on one row; only sets the campaign's budget backs are ever put
into the buckets (`unbacked_sets` waits for funding). Per-person and per-household limits are
tallies, one row per holder, checked and raised in one statement. Each purchase records which
lots it took and which it created.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""
import re

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = r"""
CREATE TABLE wallet.premium_offers (
    campaign_id uuid PRIMARY KEY REFERENCES wallet.campaigns (id),
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    mode text NOT NULL CHECK (mode IN ('first_come', 'lottery')),
    price bigint NOT NULL CHECK (price > 0),
    value bigint NOT NULL CHECK (value > price),
    local_share_bp integer NOT NULL CHECK (local_share_bp BETWEEN 0 AND 10000),
    local_classes text[],
    per_person integer NOT NULL CHECK (per_person > 0),
    per_household integer NOT NULL CHECK (per_household >= per_person),
    total_sets integer NOT NULL CHECK (total_sets > 0),
    opens_at timestamptz NOT NULL,
    closes_at timestamptz NOT NULL,
    payment_deadline timestamptz,
    usable_from timestamptz,
    usable_until timestamptz,
    buckets smallint NOT NULL CHECK (buckets BETWEEN 1 AND 256),
    unbacked_sets integer NOT NULL CHECK (unbacked_sets >= 0),
    draw_seed text,
    draw_algorithm text,
    drawn_at timestamptz,
    drawn_by text,
    released_at timestamptz,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    CHECK (closes_at > opens_at),
    CHECK ((mode = 'lottery') = (payment_deadline IS NOT NULL)),
    CHECK (payment_deadline IS NULL OR payment_deadline > closes_at),
    CHECK (usable_until IS NULL OR usable_from IS NULL OR usable_until > usable_from),
    CHECK ((local_share_bp = 0) OR local_classes IS NOT NULL)
);

CREATE TABLE wallet.premium_stock (
    campaign_id uuid NOT NULL REFERENCES wallet.premium_offers (campaign_id),
    bucket smallint NOT NULL,
    remaining integer NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (campaign_id, bucket)
);

CREATE TABLE wallet.premium_tallies (
    campaign_id uuid NOT NULL REFERENCES wallet.premium_offers (campaign_id),
    scope text NOT NULL CHECK (scope IN ('resident', 'household')),
    holder text NOT NULL,
    sets integer NOT NULL CHECK (sets >= 0),
    PRIMARY KEY (campaign_id, scope, holder)
);

CREATE TABLE wallet.premium_applications (
    id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES wallet.premium_offers (campaign_id),
    region_id uuid NOT NULL REFERENCES wallet.regions (id),
    resident_id uuid NOT NULL REFERENCES wallet.residents (id),
    household text,
    sets integer NOT NULL CHECK (sets > 0),
    status text NOT NULL CHECK (status IN ('applied', 'won', 'lost', 'paid', 'released')),
    draw_rank integer,
    draw_key text,
    won_sets integer NOT NULL DEFAULT 0 CHECK (won_sets >= 0),
    created_at timestamptz NOT NULL,
    decided_at timestamptz,
    CHECK (won_sets <= sets),
    UNIQUE (campaign_id, resident_id)
);
CREATE INDEX ix_premium_applications_resident ON wallet.premium_applications (resident_id, id);
CREATE INDEX ix_premium_applications_campaign ON wallet.premium_applications (campaign_id, id);

CREATE TABLE wallet.premium_purchases (
    id uuid PRIMARY KEY,
    campaign_id uuid NOT NULL REFERENCES wallet.campaigns (id),
    region_id uuid NOT NULL,
    resident_id uuid NOT NULL,
    application_id uuid UNIQUE REFERENCES wallet.premium_applications (id),
    sets integer NOT NULL CHECK (sets > 0),
    coin bigint NOT NULL CHECK (coin > 0),
    points bigint NOT NULL CHECK (points > 0),
    coin_local bigint NOT NULL CHECK (coin_local >= 0 AND coin_local <= coin),
    points_local bigint NOT NULL CHECK (points_local >= 0 AND points_local <= points),
    journal_id uuid NOT NULL REFERENCES wallet.journals (id),
    created_at timestamptz NOT NULL
);
CREATE INDEX ix_premium_purchases_resident ON wallet.premium_purchases (resident_id, id);
CREATE INDEX ix_premium_purchases_campaign ON wallet.premium_purchases (campaign_id, id);

-- The lots a purchase took (coin paid for the sets) and created (the set's coin and point lots).
CREATE TABLE wallet.premium_purchase_lots (
    purchase_id uuid NOT NULL REFERENCES wallet.premium_purchases (id),
    seq smallint NOT NULL,
    role text NOT NULL CHECK (role IN ('taken', 'created')),
    lot_id uuid NOT NULL REFERENCES wallet.lots (id),
    unit text NOT NULL CHECK (unit IN ('yen', 'point')),
    amount bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (purchase_id, seq)
);
"""

DROP = """
DROP TABLE IF EXISTS wallet.premium_purchase_lots;
DROP TABLE IF EXISTS wallet.premium_purchases;
DROP TABLE IF EXISTS wallet.premium_applications;
DROP TABLE IF EXISTS wallet.premium_tallies;
DROP TABLE IF EXISTS wallet.premium_stock;
DROP TABLE IF EXISTS wallet.premium_offers;
"""


def _each_statement(sql: str) -> None:
    # asyncpg runs one statement per call; no function bodies here, so `;` at a line's end ends one.
    for statement in re.split(r";\s*\n", sql):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _each_statement(TABLES)


def downgrade() -> None:
    _each_statement(DROP)
