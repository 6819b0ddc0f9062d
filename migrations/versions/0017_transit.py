"""Transit fare products and offline-verifiable e-tickets (issue 13, item 4), schema `coupons`.

- `transit_operators`: merchants the operator marked as bus operators.
- `fare_products` and their `fares` per rider category (GTFS-Fares v2): single ride, day pass
  (24 h from its first activation), N rides; active or retired.
- `tickets`: a resident's e-ticket, bought by an ordinary coin payment to the bus operator
  (`payment_id`, the wallet's payment: named by id, no foreign key into the wallet's schema).
- `validators`: bus validator devices' API keys (a SHA-256 of the secret), one bus operator each.
- `scans`: accepted scans (rides), idempotent by the validator's scan id; offline rides beyond a
  ticket's rights carry their `conflict`.

Revision ID: 0017
Revises: 0018 (the segments; rechain after the coupons core at merge)
Create Date: 2026-12-02
"""
from alembic import op

revision = "0017"
down_revision = "0018"
branch_labels = None
depends_on = None

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS coupons",
    """CREATE TABLE coupons.transit_operators (
        id uuid CONSTRAINT pk_transit_operators PRIMARY KEY,
        region_id uuid NOT NULL,
        merchant_id uuid NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT uq_transit_operators_region_id_merchant_id UNIQUE (region_id, merchant_id)
    )""",
    """CREATE TABLE coupons.fare_products (
        id uuid CONSTRAINT pk_fare_products PRIMARY KEY,
        region_id uuid NOT NULL,
        operator_id uuid NOT NULL
            CONSTRAINT fk_fare_products_operator_id_transit_operators REFERENCES coupons.transit_operators (id),
        name text NOT NULL,
        name_ja text NOT NULL,
        kind text NOT NULL,
        rides smallint,
        valid_days smallint NOT NULL,
        status text NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        retired_at timestamptz,
        CONSTRAINT uq_fare_products_region_id_operator_id_name UNIQUE (region_id, operator_id, name),
        CONSTRAINT ck_fare_products_kind CHECK (kind IN ('single_ride', 'day_pass', 'multi_ride')),
        CONSTRAINT ck_fare_products_rides CHECK (
            (kind = 'multi_ride') = (rides IS NOT NULL) AND (rides IS NULL OR rides BETWEEN 2 AND 100)),
        CONSTRAINT ck_fare_products_valid_days CHECK (valid_days BETWEEN 1 AND 366),
        CONSTRAINT ck_fare_products_status CHECK (
            status IN ('active', 'retired') AND (status = 'retired') = (retired_at IS NOT NULL))
    )""",
    """CREATE TABLE coupons.fares (
        region_id uuid NOT NULL,
        product_id uuid NOT NULL CONSTRAINT fk_fares_product_id_fare_products REFERENCES coupons.fare_products (id),
        rider_category text NOT NULL,
        amount bigint NOT NULL,
        CONSTRAINT pk_fares PRIMARY KEY (region_id, product_id, rider_category),
        CONSTRAINT ck_fares_rider_category CHECK (rider_category IN ('adult', 'child', 'elderly')),
        CONSTRAINT ck_fares_amount CHECK (amount > 0)
    )""",
    """CREATE TABLE coupons.tickets (
        id uuid CONSTRAINT pk_tickets PRIMARY KEY,
        region_id uuid NOT NULL,
        operator_id uuid NOT NULL
            CONSTRAINT fk_tickets_operator_id_transit_operators REFERENCES coupons.transit_operators (id),
        product_id uuid NOT NULL CONSTRAINT fk_tickets_product_id_fare_products REFERENCES coupons.fare_products (id),
        resident text NOT NULL,
        kind text NOT NULL,
        rider_category text NOT NULL,
        fare bigint NOT NULL,
        rides smallint,
        rides_taken integer NOT NULL,
        payment_id uuid NOT NULL,
        purchased_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        activated_at timestamptz,
        active_until timestamptz,
        CONSTRAINT uq_tickets_region_id_payment_id UNIQUE (region_id, payment_id),
        CONSTRAINT ck_tickets_rides_taken CHECK (rides_taken >= 0),
        CONSTRAINT ck_tickets_activated CHECK ((activated_at IS NULL) = (rides_taken = 0)),
        CONSTRAINT ck_tickets_rides CHECK ((kind = 'day_pass') = (rides IS NULL)),
        CONSTRAINT ck_tickets_active_until CHECK (
            (kind = 'day_pass' AND activated_at IS NOT NULL) = (active_until IS NOT NULL))
    )""",
    "CREATE INDEX ix_tickets_region_id_resident ON coupons.tickets (region_id, resident, id)",
    "CREATE INDEX ix_tickets_region_id_purchased_at ON coupons.tickets (region_id, purchased_at)",
    "CREATE INDEX ix_tickets_product_id ON coupons.tickets (product_id)",
    """CREATE TABLE coupons.validators (
        id uuid CONSTRAINT pk_validators PRIMARY KEY,
        region_id uuid NOT NULL,
        region_code text NOT NULL,
        operator_id uuid NOT NULL
            CONSTRAINT fk_validators_operator_id_transit_operators REFERENCES coupons.transit_operators (id),
        name text NOT NULL,
        secret_hash text NOT NULL CONSTRAINT uq_validators_secret_hash UNIQUE,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        revoked_at timestamptz
    )""",
    "CREATE INDEX ix_validators_operator_id ON coupons.validators (operator_id, id)",
    """CREATE TABLE coupons.scans (
        id uuid CONSTRAINT pk_scans PRIMARY KEY,
        region_id uuid NOT NULL,
        validator_id uuid NOT NULL CONSTRAINT fk_scans_validator_id_validators REFERENCES coupons.validators (id),
        scan_id uuid NOT NULL,
        request_hash text NOT NULL,
        operator_id uuid NOT NULL
            CONSTRAINT fk_scans_operator_id_transit_operators REFERENCES coupons.transit_operators (id),
        ticket_id uuid NOT NULL CONSTRAINT fk_scans_ticket_id_tickets REFERENCES coupons.tickets (id),
        product_id uuid NOT NULL CONSTRAINT fk_scans_product_id_fare_products REFERENCES coupons.fare_products (id),
        scanned_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL,
        offline boolean NOT NULL,
        vehicle_id text,
        route_id text,
        outcome text NOT NULL,
        conflict text,
        rides_left integer,
        valid_until timestamptz NOT NULL,
        CONSTRAINT uq_scans_region_id_validator_id_scan_id UNIQUE (region_id, validator_id, scan_id),
        CONSTRAINT ck_scans_outcome CHECK (outcome IN ('activation', 'ride')),
        CONSTRAINT ck_scans_conflict CHECK (conflict IN ('reused', 'used_up', 'expired'))
    )""",
    "CREATE INDEX ix_scans_ticket_id ON coupons.scans (ticket_id, scanned_at)",
    "CREATE INDEX ix_scans_region_id_scanned_at ON coupons.scans (region_id, scanned_at)",
    "CREATE INDEX ix_scans_conflicts ON coupons.scans (operator_id, id) WHERE conflict IS NOT NULL",
]

TABLES = ("scans", "validators", "tickets", "fares", "fare_products", "transit_operators")


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    # The schema stays: it is created by 0001 and shared with the rest of the coupons service.
    for table in TABLES:
        op.execute(f"DROP TABLE coupons.{table}")
