"""The operator's measure of bundle-created rides (issue 13, item 7), in the coupons schema:
`bundle_settings`, per region, N (`created_ride_days`: a ride within N days of claiming a
bundle) and M (`quiet_days`: by a resident without a ride in the M days before the claim).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""CREATE TABLE coupons.bundle_settings (
        region_id uuid CONSTRAINT pk_bundle_settings PRIMARY KEY,
        created_ride_days smallint NOT NULL,
        quiet_days smallint NOT NULL,
        set_by text NOT NULL,
        set_at timestamptz NOT NULL,
        CONSTRAINT ck_bundle_settings_days CHECK (created_ride_days BETWEEN 1 AND 366 AND quiet_days BETWEEN 1 AND 366)
    )""")


def downgrade() -> None:
    op.execute("DROP TABLE coupons.bundle_settings")
