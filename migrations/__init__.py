"""Alembic migrations: one history; one PostgreSQL schema per service (wallet, coupons,
settlement) plus `platform` for what shared/ owns (idempotency records, audit trail)."""
