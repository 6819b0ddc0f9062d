"""Every SQL query of point grants. The bulk path is set-based: one statement per table per chunk
of rows (arrays unnested by PostgreSQL), never a round trip per row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.wallet.directory.models import Region
from services.wallet.grants.models import IN_PROGRESS, Grant, GrantUpload, GrantUploadError, GrantUploadFile, PartnerKey
from services.wallet.ledger.models import Lot
from shared.ids import new_id

# --- partner keys -----------------------------------------------------------------------------


async def insert_partner_key(session: AsyncSession, **values: Any) -> PartnerKey:
    return (await session.execute(insert(PartnerKey).values(**values).returning(PartnerKey))).scalar_one()


async def partner_keys(session: AsyncSession, campaign_id: uuid.UUID) -> list[PartnerKey]:
    query = select(PartnerKey).where(PartnerKey.campaign_id == campaign_id).order_by(PartnerKey.id.desc())
    return list((await session.execute(query)).scalars())


async def partner_key(session: AsyncSession, key_id: uuid.UUID) -> PartnerKey | None:
    return await session.get(PartnerKey, key_id)


async def revoke_partner_key(session: AsyncSession, key_id: uuid.UUID, at: datetime) -> PartnerKey:
    result = await session.execute(
        update(PartnerKey).where(PartnerKey.id == key_id)
        .values(revoked_at=func.coalesce(PartnerKey.revoked_at, at)).returning(PartnerKey)
    )
    return result.scalar_one()


async def active_partner_key(session: AsyncSession, secret_hash: str) -> tuple[PartnerKey, str] | None:
    """The unrevoked key with this hash and its region's code."""
    query = (
        select(PartnerKey, Region.code)
        .join(Region, Region.id == PartnerKey.region_id)
        .where(PartnerKey.secret_hash == secret_hash, PartnerKey.revoked_at.is_(None))
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


# --- residents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointAccount:
    wallet_id: uuid.UUID
    account_id: uuid.UUID
    status: str


async def point_accounts(
    session: AsyncSession, region_id: uuid.UUID, wallet_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PointAccount]:
    """The point account behind each wallet id (a resident's yen account) of the region."""
    rows = await session.execute(
        text(
            "SELECT y.id, p.id, p.status FROM unnest(CAST(:ids AS uuid[])) AS w (id) "
            "JOIN wallet.accounts y ON y.id = w.id "
            "JOIN wallet.accounts p ON p.resident_id = y.resident_id AND p.unit = 'point' "
            "WHERE y.unit = 'yen' AND y.kind = 'resident' AND y.region_id = :region_id"
        ),
        {"ids": list(wallet_ids), "region_id": region_id},
    )
    return {r[0]: PointAccount(r[0], r[1], r[2]) for r in rows}


async def lock_point_accounts(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
    """Lock the accounts in id order (the order every posting locks in); their status and balance."""
    rows = await session.execute(
        text(
            "SELECT a.id, a.status, a.balance FROM wallet.accounts a "
            "WHERE a.id IN (SELECT unnest(CAST(:ids AS uuid[]))) ORDER BY a.id FOR UPDATE OF a"
        ),
        {"ids": list(account_ids)},
    )
    return {r[0]: (r[1], int(r[2])) for r in rows}


async def lock_budget(session: AsyncSession, account_id: uuid.UUID) -> int:
    """Lock a campaign's budget account (after any resident's, as every posting does); its balance."""
    query = text("SELECT balance FROM wallet.accounts WHERE id = :id FOR UPDATE")
    return int((await session.execute(query, {"id": account_id})).scalar_one())


async def add_to_balances(session: AsyncSession, account_ids: Sequence[uuid.UUID], deltas: Sequence[int]) -> int:
    """Raise each (locked) account's balance; how many accounts were changed."""
    result = await session.execute(
        text(
            "UPDATE wallet.accounts a SET balance = a.balance + d.delta "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:deltas AS bigint[])) AS d (id, delta) WHERE a.id = d.id"
        ),
        {"ids": list(account_ids), "deltas": list(deltas)},
    )
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


# --- grants -----------------------------------------------------------------------------------


async def insert_grant(session: AsyncSession, **values: Any) -> Grant:
    return (await session.execute(insert(Grant).values(**values).returning(Grant))).scalar_one()


def _with_expiry() -> Any:
    return select(Grant, Lot.expires_at).join(Lot, Lot.id == Grant.lot_id)


async def grant(session: AsyncSession, grant_id: uuid.UUID) -> tuple[Grant, datetime | None] | None:
    row = (await session.execute(_with_expiry().where(Grant.id == grant_id))).first()
    return (row[0], row[1]) if row else None


async def grant_by_row_key(
    session: AsyncSession, region_id: uuid.UUID, campaign_id: uuid.UUID, row_key: str
) -> tuple[Grant, datetime | None] | None:
    query = _with_expiry().where(Grant.region_id == region_id, Grant.campaign_id == campaign_id, Grant.row_key == row_key)
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def granted_contents(
    session: AsyncSession, region_id: uuid.UUID, campaign_id: uuid.UUID, row_keys: Sequence[str]
) -> dict[str, tuple[uuid.UUID, int, str, str, date]]:
    """What each of these row keys was already granted with: wallet, amount, category, event, date."""
    rows = await session.execute(
        text(
            "SELECT g.row_key, g.wallet_id, g.amount, g.category, g.event_id, g.activity_date "
            "FROM unnest(CAST(:keys AS text[])) AS k (row_key) JOIN wallet.grants g ON g.row_key = k.row_key "
            "WHERE g.region_id = :region_id AND g.campaign_id = :campaign_id"
        ),
        {"region_id": region_id, "campaign_id": campaign_id, "keys": list(row_keys)},
    )
    return {r[0]: (r[1], int(r[2]), r[3], r[4], r[5]) for r in rows}


async def grants(
    session: AsyncSession, campaign_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int,
    partner_key_id: uuid.UUID | None = None, wallet_id: uuid.UUID | None = None, row_key: str | None = None,
    upload_id: uuid.UUID | None = None,
) -> list[tuple[Grant, datetime | None]]:
    query = _with_expiry().where(Grant.campaign_id == campaign_id)
    if partner_key_id is not None:
        query = query.where(Grant.partner_key_id == partner_key_id)
    if wallet_id is not None:
        query = query.where(Grant.wallet_id == wallet_id)
    if row_key is not None:
        query = query.where(Grant.row_key == row_key)
    if upload_id is not None:
        query = query.where(Grant.upload_id == upload_id)
    if after_id is not None:
        query = query.where(Grant.id < after_id)
    rows = await session.execute(query.order_by(Grant.id.desc()).limit(limit))
    return [(r[0], r[1]) for r in rows]


async def summary(session: AsyncSession, region_id: uuid.UUID, fiscal_year: int) -> tuple[list[Row[Any]], int]:
    """Grants and points per category in the fiscal year, and how many residents received any."""
    by_category = (
        await session.execute(
            select(Grant.category, func.count(), func.coalesce(func.sum(Grant.amount), 0))
            .where(Grant.region_id == region_id, Grant.fiscal_year == fiscal_year)
            .group_by(Grant.category).order_by(Grant.category)
        )
    ).all()
    residents = (
        await session.execute(
            select(func.count(func.distinct(Grant.account_id)))
            .where(Grant.region_id == region_id, Grant.fiscal_year == fiscal_year)
        )
    ).scalar_one()
    return list(by_category), int(residents)


# --- the bulk path: one statement per table per chunk -------------------------------------------


async def insert_grant_journals(
    session: AsyncSession, *, region_id: uuid.UUID, actor: str, created_at: datetime,
    ids: Sequence[uuid.UUID], references: Sequence[str], memos: Sequence[str],
) -> None:
    await session.execute(
        text(
            "INSERT INTO wallet.journals (id, region_id, kind, actor, reference, memo, created_at) "
            "SELECT t.id, :region_id, 'grant', :actor, t.reference, t.memo, :created_at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:references AS text[]), CAST(:memos AS text[])) "
            "AS t (id, reference, memo)"
        ),
        {"region_id": region_id, "actor": actor, "created_at": created_at, "ids": list(ids),
         "references": list(references), "memos": list(memos)},
    )


async def insert_grant_entries(
    session: AsyncSession, *, region_id: uuid.UUID, created_at: datetime, ids: Sequence[uuid.UUID],
    journal_ids: Sequence[uuid.UUID], account_ids: Sequence[uuid.UUID], amounts: Sequence[int],
    balances_after: Sequence[int | None],
) -> None:
    """Entries in the order given: their `seq` (application order) follows it, so that each
    account's running balance matches `balance_after`."""
    await session.execute(
        text(
            "INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at) "
            "SELECT t.id, t.journal_id, t.account_id, :region_id, 'point', t.amount, t.balance_after, :created_at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:journal_ids AS uuid[]), CAST(:account_ids AS uuid[]), "
            "CAST(:amounts AS bigint[]), CAST(:balances AS bigint[])) WITH ORDINALITY "
            "AS t (id, journal_id, account_id, amount, balance_after, ord) ORDER BY t.ord"
        ),
        {"region_id": region_id, "created_at": created_at, "ids": list(ids), "journal_ids": list(journal_ids),
         "account_ids": list(account_ids), "amounts": list(amounts), "balances": list(balances_after)},
    )


async def insert_grant_lots(
    session: AsyncSession, *, region_id: uuid.UUID, campaign_id: uuid.UUID, restriction: list[str] | None,
    usable_from: datetime | None, expires_at: datetime | None, created_at: datetime, ids: Sequence[uuid.UUID],
    account_ids: Sequence[uuid.UUID], journal_ids: Sequence[uuid.UUID], amounts: Sequence[int],
) -> None:
    """The lots `services.wallet.ledger.lots.issue` would create, one per grant, in one statement."""
    await session.execute(
        text(
            "INSERT INTO wallet.lots (id, region_id, account_id, unit, source, campaign_id, journal_id, restriction, "
            "usable_from, expires_at, amount, remaining, expired, created_at) "
            "SELECT t.id, :region_id, t.account_id, 'point', 'grant', :campaign_id, t.journal_id, "
            "CAST(:restriction AS text[]), :usable_from, :expires_at, t.amount, t.amount, 0, :created_at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:account_ids AS uuid[]), CAST(:journal_ids AS uuid[]), "
            "CAST(:amounts AS bigint[])) AS t (id, account_id, journal_id, amount)"
        ),
        {"region_id": region_id, "campaign_id": campaign_id, "restriction": restriction,
         "usable_from": usable_from, "expires_at": expires_at, "created_at": created_at, "ids": list(ids),
         "account_ids": list(account_ids), "journal_ids": list(journal_ids), "amounts": list(amounts)},
    )


async def insert_grant_rows(
    session: AsyncSession, *, region_id: uuid.UUID, campaign_id: uuid.UUID, upload_id: uuid.UUID,
    partner_key_id: uuid.UUID | None, actor: str, fiscal_year: int, created_at: datetime, columns: dict[str, list[Any]],
) -> None:
    await session.execute(
        text(
            "INSERT INTO wallet.grants (id, region_id, campaign_id, row_key, wallet_id, account_id, category, event_id, "
            "activity_date, amount, memo, journal_id, lot_id, upload_id, partner_key_id, actor, fiscal_year, created_at) "
            "SELECT t.id, :region_id, :campaign_id, t.row_key, t.wallet_id, t.account_id, t.category, t.event_id, "
            "t.activity_date, t.amount, t.memo, t.journal_id, t.lot_id, :upload_id, :partner_key_id, :actor, "
            ":fiscal_year, :created_at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:row_keys AS text[]), CAST(:wallet_ids AS uuid[]), "
            "CAST(:account_ids AS uuid[]), CAST(:categories AS text[]), CAST(:event_ids AS text[]), "
            "CAST(:activity_dates AS date[]), CAST(:amounts AS bigint[]), CAST(:memos AS text[]), "
            "CAST(:journal_ids AS uuid[]), CAST(:lot_ids AS uuid[])) "
            "AS t (id, row_key, wallet_id, account_id, category, event_id, activity_date, amount, memo, journal_id, lot_id)"
        ),
        {"region_id": region_id, "campaign_id": campaign_id, "upload_id": upload_id, "partner_key_id": partner_key_id,
         "actor": actor, "fiscal_year": fiscal_year, "created_at": created_at, **columns},
    )


# --- uploads ----------------------------------------------------------------------------------


async def insert_upload(session: AsyncSession, content: bytes, **values: Any) -> GrantUpload:
    upload = (await session.execute(insert(GrantUpload).values(**values).returning(GrantUpload))).scalar_one()
    await session.execute(insert(GrantUploadFile).values(upload_id=upload.id, content=content))
    return upload


async def upload(session: AsyncSession | AsyncConnection, upload_id: uuid.UUID) -> GrantUpload | None:
    if isinstance(session, AsyncSession):
        return await session.get(GrantUpload, upload_id, populate_existing=True)
    row = (await session.execute(select(GrantUpload.__table__).where(GrantUpload.id == upload_id))).first()
    return GrantUpload(**row._mapping) if row else None


async def unfinished_uploads(session: AsyncSession) -> list[uuid.UUID]:
    query = select(GrantUpload.id).where(GrantUpload.status.in_([s.value for s in IN_PROGRESS])).order_by(GrantUpload.id)
    return list((await session.execute(query)).scalars())


async def upload_content(session: AsyncSession, upload_id: uuid.UUID) -> bytes:
    query = select(GrantUploadFile.content).where(GrantUploadFile.upload_id == upload_id)
    return bytes((await session.execute(query)).scalar_one())


async def uploads(
    session: AsyncSession, campaign_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int,
    partner_key_id: uuid.UUID | None = None,
) -> list[GrantUpload]:
    query = select(GrantUpload).where(GrantUpload.campaign_id == campaign_id)
    if partner_key_id is not None:
        query = query.where(GrantUpload.partner_key_id == partner_key_id)
    if after_id is not None:
        query = query.where(GrantUpload.id < after_id)
    return list((await session.execute(query.order_by(GrantUpload.id.desc()).limit(limit))).scalars())


async def set_upload(session: AsyncSession | AsyncConnection, upload_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(GrantUpload).where(GrantUpload.id == upload_id).values(**values))


async def insert_upload_errors(session: AsyncSession, upload_id: uuid.UUID, errors: Sequence[dict[str, Any]]) -> None:
    if not errors:
        return
    await session.execute(
        text(
            "INSERT INTO wallet.grant_upload_errors (id, upload_id, line, row_key, field, code, detail) "
            "SELECT t.id, :upload_id, t.line, t.row_key, t.field, t.code, t.detail "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:lines AS integer[]), CAST(:row_keys AS text[]), "
            "CAST(:fields AS text[]), CAST(:codes AS text[]), CAST(:details AS text[])) "
            "AS t (id, line, row_key, field, code, detail)"
        ),
        {"upload_id": upload_id, "ids": [new_id() for _ in errors], "lines": [e["line"] for e in errors],
         "row_keys": [e["row_key"] for e in errors], "fields": [e["field"] for e in errors],
         "codes": [e["code"] for e in errors], "details": [e["detail"] for e in errors]},
    )


async def upload_errors(
    session: AsyncSession, upload_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[GrantUploadError]:
    """In the order they were found (line order), oldest first: a report is read top to bottom."""
    query = select(GrantUploadError).where(GrantUploadError.upload_id == upload_id)
    if after_id is not None:
        query = query.where(GrantUploadError.id > after_id)
    return list((await session.execute(query.order_by(GrantUploadError.id).limit(limit))).scalars())
