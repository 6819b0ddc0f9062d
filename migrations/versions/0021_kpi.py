"""The KPI report's own tables (issue 14, item 4), in the settlement schema:

- `baseline_rates`: the ordinary cashless fee rate per region from an effective Tokyo day, the
  baseline of the fee savings;
- `kpi_targets`: the operator's target per KPI and fiscal year, with the reason printed beside it;
- `surveys` and `survey_answers`: in-app surveys, one 1–5 rating per resident, for 満足度.

Region ids are the wallet's, without foreign keys: settlement never touches the wallet's tables.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

STATEMENTS = [
    "CREATE SCHEMA IF NOT EXISTS settlement",
    """CREATE TABLE settlement.baseline_rates (
        region_id uuid NOT NULL,
        effective_from date NOT NULL,
        rate_bp smallint NOT NULL,
        source text NOT NULL,
        set_by text NOT NULL,
        set_at timestamptz NOT NULL,
        CONSTRAINT pk_baseline_rates PRIMARY KEY (region_id, effective_from),
        CONSTRAINT ck_baseline_rates_rate_bp CHECK (rate_bp BETWEEN 0 AND 10000)
    )""",
    """CREATE TABLE settlement.kpi_targets (
        region_id uuid NOT NULL,
        fiscal_year smallint NOT NULL,
        kpi text NOT NULL,
        target numeric(18, 3) NOT NULL,
        reason text,
        set_by text NOT NULL,
        set_at timestamptz NOT NULL,
        CONSTRAINT pk_kpi_targets PRIMARY KEY (region_id, fiscal_year, kpi),
        CONSTRAINT ck_kpi_targets_target CHECK (target >= 0),
        CONSTRAINT ck_kpi_targets_fiscal_year CHECK (fiscal_year BETWEEN 2000 AND 2100)
    )""",
    """CREATE TABLE settlement.surveys (
        id uuid CONSTRAINT pk_surveys PRIMARY KEY,
        region_id uuid NOT NULL,
        title_ja text NOT NULL,
        title text NOT NULL,
        question_ja text NOT NULL,
        opens_at timestamptz NOT NULL,
        closes_at timestamptz NOT NULL,
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        CONSTRAINT ck_surveys_window CHECK (opens_at < closes_at)
    )""",
    "CREATE INDEX ix_surveys_region_id_opens_at ON settlement.surveys (region_id, opens_at)",
    """CREATE TABLE settlement.survey_answers (
        survey_id uuid NOT NULL CONSTRAINT fk_survey_answers_survey_id_surveys REFERENCES settlement.surveys (id),
        subject text NOT NULL,
        region_id uuid NOT NULL,
        rating smallint NOT NULL,
        comment text,
        answered_at timestamptz NOT NULL,
        CONSTRAINT pk_survey_answers PRIMARY KEY (survey_id, subject),
        CONSTRAINT ck_survey_answers_rating CHECK (rating BETWEEN 1 AND 5),
        CONSTRAINT ck_survey_answers_comment CHECK (comment IS NULL OR char_length(comment) <= 1000)
    )""",
    "CREATE INDEX ix_survey_answers_region_id_answered_at ON settlement.survey_answers (region_id, answered_at)",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE settlement.survey_answers, settlement.surveys, settlement.kpi_targets, settlement.baseline_rates")
