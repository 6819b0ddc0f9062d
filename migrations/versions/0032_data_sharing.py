"""Data sharing (issue 15, item 4): each resident's choice whether their payment results go to
the city's data platform (the city's ID's claim and their own setting, the later in force), the
payments whose results were shared (their refunds follow them), and the days whose aggregate has
been written. The events themselves go through the outbox (0028).

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03
"""
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None

STATEMENTS = [
    """CREATE TABLE platform.sharing_choices (
        region_id UUID NOT NULL,
        subject TEXT NOT NULL,
        region_code TEXT NOT NULL,
        wallet_account_id UUID NOT NULL,
        pseudonym TEXT NOT NULL,
        opted_in BOOLEAN NOT NULL,
        provider_choice BOOLEAN,
        provider_chosen_at TIMESTAMP WITH TIME ZONE,
        resident_choice BOOLEAN,
        resident_chosen_at TIMESTAMP WITH TIME ZONE,
        area TEXT,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_sharing_choices PRIMARY KEY (region_id, subject),
        CONSTRAINT uq_sharing_choices_region_id_pseudonym UNIQUE (region_id, pseudonym),
        CONSTRAINT ck_sharing_choices_provider_choice_dated CHECK ((provider_choice IS NULL) = (provider_chosen_at IS NULL)),
        CONSTRAINT ck_sharing_choices_resident_choice_dated CHECK ((resident_choice IS NULL) = (resident_chosen_at IS NULL)),
        CONSTRAINT ck_sharing_choices_area_code CHECK (area IS NULL OR area ~ '^[a-z0-9][a-z0-9_-]{0,31}$')
)""",
    """CREATE UNIQUE INDEX uq_sharing_choices_sharing_account ON platform.sharing_choices (wallet_account_id)
        WHERE opted_in""",
    """CREATE TABLE platform.shared_payments (
        payment_id UUID NOT NULL,
        region_id UUID NOT NULL,
        region_code TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_shared_payments PRIMARY KEY (payment_id)
)""",
    """CREATE TABLE platform.sharing_aggregate_days (
        region_id UUID NOT NULL,
        day DATE NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL,
        CONSTRAINT pk_sharing_aggregate_days PRIMARY KEY (region_id, day)
)""",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE platform.sharing_aggregate_days")
    op.execute("DROP TABLE platform.shared_payments")
    op.execute("DROP TABLE platform.sharing_choices")
