"""Point grants: the city, or a partner system it trusts with one campaign, gives a resident
points for an activity (a health check-up, a clean-up, volunteering …), one at a time or by CSV.

**Who.** An operator of the campaign's region, or a partner key scoped to that one grant
campaign. A partner key grants only there and reads only the grants and uploads it made.

**The resident** is named by their wallet id (the id of the wallet their app shows, which
`GET /v1/wallets?subject=…` finds for an operator), not by their identity-provider subject: a
wallet id exists only once the resident has a wallet, cannot be guessed, and says nothing about
the person to a partner.

**Row key.** Every grant carries the client's own key for it, unique within the campaign. The
same key with the same content (wallet, amount, category, event, activity date; not the memo)
returns the first grant and changes nothing; with other content it is refused. This holds across
channels: a row granted by the API is skipped by a CSV upload that repeats it, and vice versa.

**Budget.** A grant is a `grant` journal from the campaign's budget account to the resident's
point account, and a point lot with the campaign's rules, in one transaction. Locks are taken as
every posting takes them: the residents' accounts first (in id order), then the campaign's budget
account. The budget lock serialises the grants of one campaign: the budget never goes negative,
and a row key is checked (again, under that lock) and used by one grant at a time. Points have no
balance cap; the cap is on paid-in yen.

**CSV uploads** (up to `max_grant_rows` rows) are accepted at once (202) and processed by a
worker (tasks.py): every row is checked first; if any is bad the upload is rejected with every bad
row and its reason, and nothing is granted. Otherwise all rows are granted in one transaction,
which commits together with the upload's `done` status: an upload is never half applied. Rows
already granted with the same content are skipped and counted, so uploading a file again is
harmless. Progress is written on a separate connection, so it can be watched while the grant
transaction runs, and watching it takes no lock the worker needs. The price of all-or-nothing:
from the moment the residents' accounts are locked until the commit (about 13–19 s for 100,000
rows on the 2-CPU bench machine, bench/grants_upload.py), a payment by a resident in the file
waits; run large uploads outside shopping hours.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import service as campaigns
from services.wallet.campaigns.errors import BudgetExhausted, CampaignKindMismatch
from services.wallet.campaigns.models import Campaign, CampaignKind
from services.wallet.directory import service as directory
from services.wallet.directory.models import Region
from services.wallet.grants import repository as repo
from services.wallet.grants.errors import (
    ActivityDateInFuture,
    CampaignWindowOver,
    PartnerKeyNotFound,
    RowKeyReused,
    UnknownResident,
)
from services.wallet.grants.models import Grant, GrantCategory, GrantUpload, GrantUploadError, PartnerKey, UploadStatus
from services.wallet.ledger import lots
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import AccountInactive
from services.wallet.ledger.models import JournalKind, LotSource, Status
from shared import audit
from shared.auth import PARTNER_KEY_PREFIX, Principal, Role, hash_api_key
from shared.clock import Clock, fiscal_year, tokyo_date
from shared.ids import new_id
from shared.money import MAX_AMOUNT, Unit

# --- partner keys -----------------------------------------------------------------------------


async def resolve_partner_key(session: AsyncSession, secret: str) -> Principal | None:
    """The partner behind a presented key (the wallet's API-key resolver calls this)."""
    found = await repo.active_partner_key(session, hash_api_key(secret))
    if found is None:
        return None
    key, region_code = found
    return Principal(
        subject=f"api_key:{key.id}", role=Role.PARTNER, region_code=region_code, api_key_id=key.id,
        campaign_id=key.campaign_id,
    )


async def create_partner_key(
    session: AsyncSession, clock: Clock, actor: audit.Actor, campaign: Campaign, name: str
) -> tuple[PartnerKey, str]:
    campaigns.active(campaign, CampaignKind.GRANT)
    secret = PARTNER_KEY_PREFIX + secrets.token_urlsafe(32)
    key = await repo.insert_partner_key(
        session, id=new_id(), region_id=campaign.region_id, campaign_id=campaign.id, name=name,
        secret_hash=hash_api_key(secret), created_by=actor.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="partner_key.create",
        target_type="partner_key", target_id=key.id, after={"campaign_id": str(campaign.id), "name": name},
    )
    return key, secret


async def list_partner_keys(session: AsyncSession, campaign: Campaign) -> list[PartnerKey]:
    return await repo.partner_keys(session, campaign.id)


async def revoke_partner_key(
    session: AsyncSession, clock: Clock, actor: audit.Actor, campaign: Campaign, key_id: uuid.UUID
) -> PartnerKey:
    key = await repo.partner_key(session, key_id)
    if key is None or key.campaign_id != campaign.id:
        raise PartnerKeyNotFound(f"No partner key {key_id} for this campaign.")
    before = key.revoked_at
    revoked = await repo.revoke_partner_key(session, key_id, clock.now())
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="partner_key.revoke",
        target_type="partner_key", target_id=key_id,
        before={"revoked_at": before.isoformat() if before else None},
        after={"revoked_at": revoked.revoked_at.isoformat() if revoked.revoked_at else None},
    )
    return revoked


# --- the campaign granted in -------------------------------------------------------------------


def _grant_campaign(campaign: Campaign) -> Campaign:
    if campaign.kind != CampaignKind.GRANT:
        raise CampaignKindMismatch(f"Campaign {campaign.name!r} is a {campaign.kind} campaign, not a grant campaign.")
    return campaign


def _check_window(campaign: Campaign, now: datetime) -> lots.LotRule:
    rule = campaigns.lot_rule(campaign, now)
    if rule.expires_at is not None and rule.expires_at <= now:
        raise CampaignWindowOver(
            f"Points of campaign {campaign.name!r} expired at {rule.expires_at.isoformat()}; a grant now would be worthless.",
            expires_at=rule.expires_at.isoformat(),
        )
    return rule


# --- single grants ----------------------------------------------------------------------------

GrantView = tuple[Grant, datetime | None]  # the grant and when its points expire


def _content(wallet_id: uuid.UUID, amount: int, category: str, event_id: str, activity_date: date) -> tuple[Any, ...]:
    return (wallet_id, amount, str(category), event_id, activity_date)


def _differences(old: tuple[Any, ...], new: tuple[Any, ...]) -> list[str]:
    names = ("wallet_id", "amount", "category", "event_id", "activity_date")
    return [name for name, a, b in zip(names, old, new, strict=True) if a != b]


async def grant(
    session: AsyncSession, clock: Clock, actor: audit.Actor, campaign: Campaign, details: dict[str, Any], *,
    partner_key_id: uuid.UUID | None,
) -> tuple[GrantView, bool]:
    """Grant points to one resident; (the grant, True) if granted now, (the first grant, False)
    if its row key was already granted with the same content. `partner_key_id`: the partner key
    granting, if a partner system is."""
    _grant_campaign(campaign)
    content = _content(details["wallet_id"], details["amount"], details["category"], details["event_id"],
                       details["activity_date"])
    if (existing := await _granted_before(session, campaign, details["row_key"], content)) is not None:
        return existing, False  # a retry: answered without taking a lock
    campaigns.active(campaign)
    now = clock.now()
    if details["activity_date"] > tokyo_date(now):
        raise ActivityDateInFuture(f"The activity date {details['activity_date']} is after today ({tokyo_date(now)}).")
    rule = _check_window(campaign, now)
    found = await directory.wallet(session, details["wallet_id"])
    if found is None or found[1].region_id != campaign.region_id:
        raise UnknownResident(f"No resident has wallet {details['wallet_id']} in this region.")
    points = await directory.resident_account(session, found[0].id, Unit.POINT.value)
    status, _ = (await repo.lock_point_accounts(session, [points.id]))[points.id]
    budget = await campaigns.budget_account(session, campaign.id)
    available = await repo.lock_budget(session, budget.id)
    # Behind the budget lock: a twin request with the same row key has committed or not started.
    if (existing := await _granted_before(session, campaign, details["row_key"], content)) is not None:
        return existing, False
    if status != Status.ACTIVE:
        raise AccountInactive(f"The resident's wallet is {status}.", account_id=str(found[1].id))
    amount = details["amount"]
    if available < amount:
        raise BudgetExhausted(
            f"The campaign budget holds {available} points; this grant needs {amount}.", budget=available, required=amount
        )
    grant_id = new_id()
    posted = await ledger.post_journal(
        session, clock, region_id=campaign.region_id, kind=JournalKind.GRANT, actor=actor.subject,
        legs=[ledger.Leg(budget, -amount), ledger.Leg(points, amount)], reference=str(grant_id),
        memo=details.get("memo") or _default_memo(details["category"], details["event_id"], details["activity_date"]),
    )
    lot = await lots.issue(
        session, account=points, amount=amount, source=LotSource.GRANT, journal_id=posted.journal_id, rule=rule,
        now=posted.created_at, campaign_id=campaign.id,
    )
    created = await repo.insert_grant(
        session, id=grant_id, region_id=campaign.region_id, campaign_id=campaign.id, row_key=details["row_key"],
        wallet_id=details["wallet_id"], account_id=points.id, category=str(details["category"]),
        event_id=details["event_id"], activity_date=details["activity_date"], amount=amount, memo=details.get("memo"),
        journal_id=posted.journal_id, lot_id=lot.id, upload_id=None, partner_key_id=partner_key_id,
        actor=actor.subject, fiscal_year=fiscal_year(posted.created_at), created_at=posted.created_at,
    )
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="grant.create", target_type="grant",
        target_id=grant_id,
        after={"campaign_id": str(campaign.id), "row_key": created.row_key, "wallet_id": str(created.wallet_id),
               "amount": amount, "category": created.category, "event_id": created.event_id,
               "activity_date": created.activity_date.isoformat(), "journal_id": str(posted.journal_id),
               "budget_after": posted.balances_after[budget.id]},
    )
    return (created, lot.expires_at), True


async def _granted_before(
    session: AsyncSession, campaign: Campaign, row_key: str, content: tuple[Any, ...]
) -> GrantView | None:
    """The grant already made under this row key if its content is the same; refused if not."""
    existing = await repo.grant_by_row_key(session, campaign.region_id, campaign.id, row_key)
    if existing is None:
        return None
    first = existing[0]
    differs = _differences(
        _content(first.wallet_id, first.amount, first.category, first.event_id, first.activity_date), content
    )
    if differs:
        raise RowKeyReused(
            f"Row key {row_key!r} was granted on {first.created_at.isoformat()} with a different "
            f"{', '.join(differs)}; a new grant needs a new row key.",
            grant_id=str(first.id), differs=differs,
        )
    return existing


def _default_memo(category: str, event_id: str, activity_date: date) -> str:
    return f"{category}: {event_id} ({activity_date.isoformat()})"


async def list_grants(
    session: AsyncSession, campaign: Campaign, *, partner_key_id: uuid.UUID | None, after_id: uuid.UUID | None,
    limit: int, **filters: Any,
) -> list[GrantView]:
    """The campaign's grants; only those of one partner key if `partner_key_id` names it."""
    return await repo.grants(session, campaign.id, after_id=after_id, limit=limit, partner_key_id=partner_key_id,
                             **filters)


@dataclass(frozen=True)
class Summary:
    fiscal_year: int
    grants: int
    points: int
    residents: int
    by_category: list[tuple[str, int, int]]


async def summary(session: AsyncSession, region: Region, year: int) -> Summary:
    """The city's KPI ポイント付与額 / 付与回数: points and grants in the fiscal year."""
    rows, residents = await repo.summary(session, region.id, year)
    by_category = [(r[0], int(r[1]), int(r[2])) for r in rows]
    return Summary(year, sum(c[1] for c in by_category), sum(c[2] for c in by_category), residents, by_category)


# --- CSV uploads: accepting one -----------------------------------------------------------------


def campaign_to_upload_to(campaign: Campaign) -> Campaign:
    """The campaign, if grants may be uploaded to it (an open grant campaign): checked before the
    file is read."""
    return campaigns.active(_grant_campaign(campaign))


async def accept_upload(
    session: AsyncSession, clock: Clock, actor: audit.Actor, campaign: Campaign, content: bytes,
    filename: str | None, *, partner_key_id: uuid.UUID | None,
) -> GrantUpload:
    """Record the file and queue it; a worker checks and grants it (tasks.py)."""
    now = clock.now()
    digest = hashlib.sha256(content).hexdigest()
    upload = await repo.insert_upload(
        session, content, id=new_id(), region_id=campaign.region_id, campaign_id=campaign.id,
        status=UploadStatus.VALIDATING.value, filename=filename, content_sha256=digest, size_bytes=len(content),
        partner_key_id=partner_key_id, created_by=actor.subject, created_role=actor.role,
        request_id=actor.request_id, created_at=now,
    )
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="grant_upload.create",
        target_type="grant_upload", target_id=upload.id,
        after={"campaign_id": str(campaign.id), "filename": filename, "sha256": digest, "bytes": len(content)},
    )
    return upload


async def list_uploads(
    session: AsyncSession, campaign: Campaign, *, partner_key_id: uuid.UUID | None, after_id: uuid.UUID | None,
    limit: int,
) -> list[GrantUpload]:
    """The campaign's uploads; only those of one partner key if `partner_key_id` names it."""
    return await repo.uploads(session, campaign.id, after_id=after_id, limit=limit, partner_key_id=partner_key_id)


async def upload_errors(
    session: AsyncSession, upload: GrantUpload, *, after_id: uuid.UUID | None, limit: int,
) -> list[GrantUploadError]:
    return await repo.upload_errors(session, upload.id, after_id=after_id, limit=limit)


# --- CSV uploads: checking every row ------------------------------------------------------------

REQUIRED_COLUMNS = ("row_key", "wallet_id", "amount", "category", "event_id", "activity_date")
COLUMNS = (*REQUIRED_COLUMNS, "memo")
CHUNK = 10_000  # rows per database round of checks and of inserts, and per progress report

_ROW_KEY = re.compile(r"[!-~]{1,128}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_AMOUNT = re.compile(r"[1-9][0-9]{0,12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EVENT_ID = re.compile(r"[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*")
_MEMO = re.compile(r"[^\x00-\x1f\x7f]*")
_CATEGORIES = frozenset(c.value for c in GrantCategory)


@dataclass
class Row:
    line: int
    row_key: str
    wallet_id: uuid.UUID
    amount: int
    category: str
    event_id: str
    activity_date: date
    memo: str | None
    account_id: uuid.UUID | None = None


@dataclass
class Check:
    """What checking a file found: the rows to grant, the rows already granted, and every problem."""

    total: int = 0
    rows: list[Row] = field(default_factory=list)
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, line: int | None, code: str, detail: str, *, row_key: str | None = None,
                column: str | None = None) -> None:
        self.problems.append({"line": line, "row_key": row_key, "field": column, "code": code, "detail": detail})


Progress = Callable[..., Awaitable[None]]


class Rejected(Exception):
    """The upload is refused; `check.problems` says why."""

    def __init__(self, check: Check) -> None:
        super().__init__(f"{len(check.problems)} problems")
        self.check = check


Records = tuple[list[tuple[int, list[str]]], dict[str, int], int]


def read_csv(content: bytes, max_rows: int, check: Check) -> Records | None:
    """The data records with the line each starts on, the column positions and the header's
    width; None (with the problem noted) if the file as a whole cannot be read: not UTF-8, a
    broken header, too many rows."""
    try:
        body = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        check.problem(None, "not-utf-8", f"The file is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8.")
        return None
    reader = csv.reader(io.StringIO(body, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    line = 1
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields or fields == [""]:
                continue  # a blank line
            if header is None:
                header = fields
                continue
            records.append((start, fields))
            if len(records) > max_rows:
                check.problem(None, "too-many-rows", f"The file has more than {max_rows} rows; split it.")
                return None
    except csv.Error as exc:
        check.problem(reader.line_num, "malformed-csv", f"The CSV cannot be read here: {exc}.")
        return None
    if header is None:
        check.problem(None, "empty-file", "The file is empty; its first line must name the columns.")
        return None
    names = [name.strip() for name in header]
    unknown = [name for name in names if name not in COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if unknown or missing or duplicated:
        parts = [f"unknown {', '.join(repr(n) for n in unknown)}" if unknown else "",
                 f"missing {', '.join(missing)}" if missing else "",
                 f"repeated {', '.join(duplicated)}" if duplicated else ""]
        check.problem(1, "invalid-header", f"The header must name the columns {', '.join(COLUMNS)} (memo optional): "
                      + "; ".join(p for p in parts if p) + ".")
        return None
    if not records:
        check.problem(None, "no-rows", "The file has a header but no rows.")
        return None
    order = {name: names.index(name) for name in names}
    return records, order, len(names)


def parse_row(line: int, fields: list[str], order: dict[str, int], width: int, today: date, check: Check) -> Row | None:
    """One record as a row, or None with each of its problems noted."""
    if len(fields) != width:
        check.problem(line, "wrong-field-count", f"The line has {len(fields)} fields; the header names {width}.")
        return None
    value = {name: fields[index] for name, index in order.items()}
    row_key = value["row_key"]
    before = len(check.problems)
    if not _ROW_KEY.fullmatch(row_key):
        check.problem(line, "invalid-row-key", "A row key is 1 to 128 printable ASCII characters, no spaces.",
                      column="row_key")
    shown_key = row_key if _ROW_KEY.fullmatch(row_key) else None
    wallet_text = value["wallet_id"].strip()
    if not _UUID.fullmatch(wallet_text):
        check.problem(line, "invalid-wallet-id", f"{wallet_text[:40]!r} is not a wallet id (a UUID).",
                      row_key=shown_key, column="wallet_id")
    amount_text = value["amount"].strip()
    amount = int(amount_text) if _AMOUNT.fullmatch(amount_text) else 0
    if not 0 < amount <= MAX_AMOUNT:
        check.problem(line, "invalid-amount", f"{amount_text[:20]!r} is not a whole number of points above 0.",
                      row_key=shown_key, column="amount")
    category = value["category"].strip()
    if category not in _CATEGORIES:
        check.problem(line, "unknown-category",
                      f"{category[:40]!r} is not a category; one of {', '.join(sorted(_CATEGORIES))}.",
                      row_key=shown_key, column="category")
    event_id = value["event_id"]
    if not (len(event_id) <= 100 and _EVENT_ID.fullmatch(event_id)):
        check.problem(line, "invalid-event-id", "An event id is 1 to 100 characters without control characters.",
                      row_key=shown_key, column="event_id")
    date_text = value["activity_date"].strip()
    activity_date: date | None = None
    if _DATE.fullmatch(date_text):
        try:
            activity_date = date.fromisoformat(date_text)
        except ValueError:
            pass
    if activity_date is None:
        check.problem(line, "invalid-activity-date", f"{date_text[:20]!r} is not a date (YYYY-MM-DD).",
                      row_key=shown_key, column="activity_date")
    elif activity_date > today:
        check.problem(line, "activity-date-in-future", f"The activity date {activity_date} is after today ({today}).",
                      row_key=shown_key, column="activity_date")
    memo = value.get("memo", "")
    if not (len(memo) <= 200 and _MEMO.fullmatch(memo)):
        check.problem(line, "invalid-memo", "A memo is at most 200 characters without control characters.",
                      row_key=shown_key, column="memo")
    if len(check.problems) > before:
        return None
    assert activity_date is not None
    return Row(line, row_key, uuid.UUID(wallet_text), amount, category, event_id, activity_date, memo or None)


async def check_upload(
    session: AsyncSession, campaign: Campaign, content: bytes, *, max_rows: int, now: datetime, available: int,
    progress: Progress,
) -> Check:
    """Every row checked: format, resident, duplicates in the file, row keys already granted (same
    content: skipped; other content: refused), and the total against the budget."""
    check = Check()
    read = read_csv(content, max_rows, check)
    if read is None:
        return check
    records, order, width = read
    check.total = len(records)
    await progress(total_rows=check.total)
    today = tokyo_date(now)
    first_line: dict[str, int] = {}
    for offset in range(0, len(records), CHUNK):
        rows: list[Row] = []
        for line, fields in records[offset:offset + CHUNK]:
            row = parse_row(line, fields, order, width, today, check)
            if row is None:
                # A bad row's key still claims its place: a later row with the same key is a duplicate.
                key = fields[order["row_key"]] if len(fields) == width else None
                if key and key not in first_line:
                    first_line[key] = line
                continue
            if row.row_key in first_line:
                check.problem(row.line, "duplicate-row-key",
                              f"Row key {row.row_key!r} is already on line {first_line[row.row_key]}.",
                              row_key=row.row_key, column="row_key")
                continue
            first_line[row.row_key] = row.line
            rows.append(row)
        await asyncio.sleep(0)  # parsing is CPU work: let other requests of this process run
        accounts = await repo.point_accounts(session, campaign.region_id, list({r.wallet_id for r in rows}))
        granted = await repo.granted_contents(session, campaign.region_id, campaign.id, [r.row_key for r in rows])
        for row in rows:
            account = accounts.get(row.wallet_id)
            if account is None:
                check.problem(row.line, "unknown-resident", f"No resident has wallet {row.wallet_id} in this region.",
                              row_key=row.row_key, column="wallet_id")
                continue
            if account.status != Status.ACTIVE:
                check.problem(row.line, "account-inactive", f"Wallet {row.wallet_id} is {account.status}.",
                              row_key=row.row_key, column="wallet_id")
                continue
            row.account_id = account.account_id
            old = granted.get(row.row_key)
            if old is not None:
                differs = _differences(
                    old, _content(row.wallet_id, row.amount, row.category, row.event_id, row.activity_date)
                )
                if differs:
                    check.problem(row.line, "row-key-reused",
                                  f"Row key {row.row_key!r} was already granted with a different {', '.join(differs)}.",
                                  row_key=row.row_key, column="row_key")
                else:
                    check.skipped += 1
                continue
            check.rows.append(row)
        await progress(validated_rows=min(offset + CHUNK, check.total))
    needed = sum(r.amount for r in check.rows)
    if needed > available:
        check.problem(None, "budget-exhausted",
                      f"The rows to grant need {needed} points; the campaign budget holds {available}.")
    check.problems.sort(key=lambda p: (p["line"] is not None, p["line"] or 0))
    return check


# --- CSV uploads: processing one (the worker calls this) ----------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: UploadStatus
    check: Check


async def process_upload(
    session: AsyncSession, clock: Clock, upload: GrantUpload, content: bytes, *, max_rows: int, progress: Progress
) -> Outcome:
    """Check every row, then grant them all in this session's one transaction (the caller
    commits it); the upload's final status is written in the same transaction. Raises
    `Rejected` (nothing written) if any row is bad."""
    uploader = _uploader(upload)
    campaign = await campaigns.campaign(session, upload.campaign_id)
    assert campaign is not None
    check = Check()
    if campaign.status != Status.ACTIVE or campaign.kind != CampaignKind.GRANT:
        check.problem(None, "campaign-closed", f"Campaign {campaign.name!r} is closed; nothing can be granted in it.")
        raise Rejected(check)
    now = clock.now()
    try:
        rule = _check_window(campaign, now)
    except CampaignWindowOver as exc:
        check.problem(None, exc.slug, exc.detail)
        raise Rejected(check) from None
    budget = await campaigns.budget_account(session, campaign.id)
    # Every row checked without a lock (the whole list of problems, however long it takes) ...
    check = await check_upload(session, campaign, content, max_rows=max_rows, now=now, available=budget.balance,
                               progress=progress)
    if check.problems:
        raise Rejected(check)

    # ... then the residents' point accounts locked (in id order), then the budget, as every
    # posting locks them; what may have changed since it was checked is checked again behind the
    # locks, held to commit.
    await progress(status=UploadStatus.GRANTING.value, granted_rows=0)
    locked = await repo.lock_point_accounts(session, sorted({r.account_id for r in check.rows if r.account_id}))
    available = await repo.lock_budget(session, budget.id)
    granted = await repo.granted_contents(session, campaign.region_id, campaign.id, [r.row_key for r in check.rows])
    rows: list[Row] = []
    for row in check.rows:
        assert row.account_id is not None
        status, _ = locked[row.account_id]
        old = granted.get(row.row_key)
        if status != Status.ACTIVE:
            check.problem(row.line, "account-inactive", f"Wallet {row.wallet_id} is {status}.", row_key=row.row_key,
                          column="wallet_id")
        elif old is not None:  # granted meanwhile, by the API or another upload
            differs = _differences(old, _content(row.wallet_id, row.amount, row.category, row.event_id,
                                                 row.activity_date))
            if differs:
                check.problem(row.line, "row-key-reused",
                              f"Row key {row.row_key!r} was granted meanwhile with a different {', '.join(differs)}.",
                              row_key=row.row_key, column="row_key")
            else:
                check.skipped += 1
        else:
            rows.append(row)
    points = sum(r.amount for r in rows)
    if points > available:
        check.problem(None, "budget-exhausted",
                      f"The rows to grant need {points} points; the campaign budget holds {available}.")
    if check.problems:
        raise Rejected(check)

    balances = {account_id: balance for account_id, (_, balance) in locked.items()}
    opening = dict(balances)
    balances[budget.id] = opening[budget.id] = available
    year = fiscal_year(now)
    for offset in range(0, len(rows), CHUNK):
        chunk = rows[offset:offset + CHUNK]
        await _grant_chunk(session, campaign, budget.id, upload, chunk, balances, rule, now, upload.created_by, year)
        await progress(granted_rows=offset + len(chunk))
    changed = [a for a in balances if balances[a] != opening[a]]
    updated = await repo.add_to_balances(session, changed, [balances[a] - opening[a] for a in changed])
    assert updated == len(changed), "every locked account was changed"
    await repo.set_upload(
        session, upload.id, status=UploadStatus.DONE.value, total_rows=check.total, validated_rows=check.total,
        granted_rows=len(rows), skipped_rows=check.skipped, points=points, error_count=0, detail=None,
        finished_at=clock.now(),
    )
    await audit.record(
        session, clock, uploader, region_id=campaign.region_id, action="grant_upload.grant",
        target_type="grant_upload", target_id=upload.id,
        before={"budget": available},
        after={"status": UploadStatus.DONE.value, "granted_rows": len(rows), "skipped_rows": check.skipped,
               "points": points, "budget": available - points, "sha256": upload.content_sha256},
    )
    return Outcome(UploadStatus.DONE, check)


async def _grant_chunk(
    session: AsyncSession, campaign: Campaign, budget_id: uuid.UUID, upload: GrantUpload, rows: Sequence[Row],
    balances: dict[uuid.UUID, int], rule: lots.LotRule, now: datetime, actor: str, year: int,
) -> None:
    """The journals, entries, lots and grants `grant` would write for each row, set-based."""
    grant_ids = [new_id() for _ in rows]
    journal_ids = [new_id() for _ in rows]
    lot_ids = [new_id() for _ in rows]
    memos = [r.memo or _default_memo(r.category, r.event_id, r.activity_date) for r in rows]
    await repo.insert_grant_journals(
        session, region_id=campaign.region_id, actor=actor, created_at=now, ids=journal_ids,
        references=[str(g) for g in grant_ids], memos=memos,
    )
    # Running balances in the order the entries are inserted (their `seq`): the residents' and
    # the budget's, both balance-tracking accounts.
    running: list[int | None] = []
    for row in rows:
        assert row.account_id is not None
        balances[row.account_id] += row.amount
        running.append(balances[row.account_id])
    for row in rows:
        balances[budget_id] -= row.amount
        running.append(balances[budget_id])
    await repo.insert_grant_entries(
        session, region_id=campaign.region_id, created_at=now, ids=[new_id() for _ in range(2 * len(rows))],
        journal_ids=journal_ids + journal_ids,
        account_ids=[r.account_id for r in rows] + [budget_id] * len(rows),  # type: ignore[misc]
        amounts=[r.amount for r in rows] + [-r.amount for r in rows],
        balances_after=running,
    )
    await repo.insert_grant_lots(
        session, region_id=campaign.region_id, campaign_id=campaign.id,
        restriction=list(rule.restriction) if rule.restriction is not None else None,
        usable_from=rule.usable_from, expires_at=rule.expires_at, created_at=now, ids=lot_ids,
        account_ids=[r.account_id for r in rows],  # type: ignore[misc]
        journal_ids=journal_ids, amounts=[r.amount for r in rows],
    )
    await repo.insert_grant_rows(
        session, region_id=campaign.region_id, campaign_id=campaign.id, upload_id=upload.id,
        partner_key_id=upload.partner_key_id, actor=actor, fiscal_year=year, created_at=now,
        columns={
            "ids": grant_ids, "row_keys": [r.row_key for r in rows], "wallet_ids": [r.wallet_id for r in rows],
            "account_ids": [r.account_id for r in rows], "categories": [r.category for r in rows],
            "event_ids": [r.event_id for r in rows], "activity_dates": [r.activity_date for r in rows],
            "amounts": [r.amount for r in rows], "memos": [r.memo for r in rows], "journal_ids": journal_ids,
            "lot_ids": lot_ids,
        },
    )


async def record_rejection(session: AsyncSession, clock: Clock, upload: GrantUpload, check: Check) -> None:
    """The upload refused, with every problem; nothing else is written (the caller commits)."""
    await repo.insert_upload_errors(session, upload.id, check.problems)
    await repo.set_upload(
        session, upload.id, status=UploadStatus.REJECTED.value, total_rows=check.total,
        validated_rows=check.total, granted_rows=0, skipped_rows=0, points=0, error_count=len(check.problems),
        detail=f"{len(check.problems)} problem(s) found; nothing was granted. Fix them and upload the file again.",
        finished_at=clock.now(),
    )
    uploader = _uploader(upload)
    await audit.record(
        session, clock, uploader, region_id=upload.region_id, action="grant_upload.reject",
        target_type="grant_upload", target_id=upload.id,
        after={"status": UploadStatus.REJECTED.value, "error_count": len(check.problems)},
    )


def _uploader(upload: GrantUpload) -> audit.Actor:
    """Who uploaded the file, for the audit trail of what the worker does on their behalf."""
    subject = upload.created_by if upload.partner_key_id is None else f"api_key:{upload.partner_key_id}"
    return audit.Actor(subject, upload.created_role, upload.request_id)


# Queries the modules above use as they are: they call this service, never the repository.
grant_by_id = repo.grant
upload_by_id = repo.upload
