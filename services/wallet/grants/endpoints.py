"""Point grants for activities (/v1): single grants, CSV uploads and their progress, partner keys,
and the fiscal-year figures the city reports."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse

from services.wallet import access
from services.wallet.grants import service, tasks
from services.wallet.grants.errors import UnsupportedMediaType
from services.wallet.grants.models import IN_PROGRESS, GrantUpload
from services.wallet.grants.schemas import (
    GrantCreate,
    GrantOut,
    GrantSummaryOut,
    GrantTotal,
    GrantUploadErrorOut,
    GrantUploadOut,
    PartnerKeyCreate,
    PartnerKeyCreated,
    PartnerKeyOut,
    RowKey,
)
from services.wallet.grants.service import GrantView
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.clock import fiscal_year
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import REPLAY_HEADER, IdempotencyDep
from shared.observability import allow_large_body
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of
from shared.text import text

router = APIRouter(prefix="/v1", tags=["grants"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
Granter = Annotated[Principal, require(Role.OPERATOR, Role.PARTNER)]
GrantReader = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.PARTNER)]

GRANT_PROBLEMS = {
    **PROBLEMS,
    402: {"description": "the campaign budget is too low", "content": {"application/problem+json": {}}},
}
UPLOAD_PROBLEMS = {
    **GRANT_PROBLEMS,
    202: {"headers": {"Location": {
        "description": "the upload's status to poll (GET); not sent again on a replayed response",
        "schema": {"type": "string"},
    }}},
    415: {"description": "the body is not text/csv", "content": {"application/problem+json": {}}},
}
FIRST_ERRORS = 200


def grant_out(found: GrantView) -> GrantOut:
    g, expires_at = found
    return GrantOut(
        id=g.id, campaign_id=g.campaign_id, row_key=g.row_key, wallet_id=g.wallet_id, amount=g.amount,
        category=g.category, event_id=g.event_id, activity_date=g.activity_date, memo=g.memo, journal_id=g.journal_id,
        lot_id=g.lot_id, expires_at=expires_at, upload_id=g.upload_id, partner_key_id=g.partner_key_id, actor=g.actor,
        fiscal_year=g.fiscal_year, created_at=g.created_at,
    )


def upload_out(upload: GrantUpload, errors: list[GrantUploadErrorOut]) -> GrantUploadOut:
    u = upload
    return GrantUploadOut(
        id=u.id, campaign_id=u.campaign_id, status=u.status, filename=u.filename, content_sha256=u.content_sha256,
        size_bytes=u.size_bytes, total_rows=u.total_rows, validated_rows=u.validated_rows, granted_rows=u.granted_rows,
        skipped_rows=u.skipped_rows, points=u.points, error_count=u.error_count, errors=errors, detail=u.detail,
        partner_key_id=u.partner_key_id, created_by=u.created_by, created_at=u.created_at, started_at=u.started_at,
        finished_at=u.finished_at,
    )


# --- grants -----------------------------------------------------------------------------------


@router.post(
    "/campaigns/{campaign_id}/grants", status_code=201, response_model=GrantOut, responses={
        **GRANT_PROBLEMS, 200: {"description": "this row key was already granted with the same content: the first grant",
                                "model": GrantOut},
    },
)
async def create_grant(
    campaign_id: uuid.UUID, body: GrantCreate, principal: Granter, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Grant points to one resident for an activity (operator, or the campaign's partner key).
    The row key makes it idempotent beyond the Idempotency-Key: a row key already granted with
    the same content answers 200 with the first grant and changes nothing."""
    if replay := await idem.replay():
        return replay
    found, created = await service.grant(
        session, clock, Actor.of(principal), await access.grant_campaign(session, principal, campaign_id),
        body.model_dump(), partner_key_id=access.own_partner_key(principal),
    )
    response = await idem.respond(201 if created else 200, grant_out(found))
    if not created:
        response.headers[REPLAY_HEADER] = "true"
    return response


@router.get("/campaigns/{campaign_id}/grants", response_model=Page[GrantOut], responses=PROBLEMS)
async def list_grants(
    campaign_id: uuid.UUID, principal: GrantReader, session: SessionDep,
    wallet_id: Annotated[uuid.UUID | None, Query(description="only grants to this wallet")] = None,
    row_key: Annotated[RowKey | None, Query(description="the grant with this row key")] = None,
    upload_id: Annotated[uuid.UUID | None, Query(description="only grants of this CSV upload")] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[GrantOut]:
    """The campaign's grants, newest first (operator, auditor; a partner key sees its own)."""
    found = await service.list_grants(
        session, await access.grant_campaign(session, principal, campaign_id),
        partner_key_id=access.own_partner_key(principal), after_id=decode_cursor(cursor), limit=limit + 1,
        wallet_id=wallet_id, row_key=row_key, upload_id=upload_id,
    )
    return page_of([grant_out(g) for g in found], [g[0].id for g in found], limit)


@router.get("/campaigns/{campaign_id}/grants/{grant_id}", response_model=GrantOut, responses=PROBLEMS)
async def get_grant(campaign_id: uuid.UUID, grant_id: uuid.UUID, principal: GrantReader, session: SessionDep) -> GrantOut:
    return grant_out(await access.grant(session, principal, campaign_id, grant_id))


@router.get("/grants/summary", response_model=GrantSummaryOut, responses=PROBLEMS)
async def grant_summary(
    principal: Overseer, session: SessionDep, clock: ClockDep,
    year: Annotated[int | None, Query(alias="fiscal_year", ge=2000, le=2999, description="年度; default: the current one")] = None,
) -> GrantSummaryOut:
    """ポイント付与額 / 付与回数: points granted and number of grants in a fiscal year, by category."""
    found = await service.summary(
        session, await access.region(session, principal), year if year is not None else fiscal_year(clock.now())
    )
    return GrantSummaryOut(
        fiscal_year=found.fiscal_year, grants=found.grants, points=found.points, residents=found.residents,
        by_category=[GrantTotal(category=c, grants=n, points=p) for c, n, p in found.by_category],
    )


# --- CSV uploads ------------------------------------------------------------------------------

allow_large_body("POST", r"/v1/campaigns/[^/]+/grant-uploads")
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "UTF-8 CSV (a BOM is fine). First line: the column names `row_key, wallet_id, amount, "
        "category, event_id, activity_date` and optionally `memo`, in any order; then one grant per line. Up to "
        "100,000 rows (`max_grant_rows`) and `max_upload_bytes`.",
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/campaigns/{campaign_id}/grant-uploads", status_code=202, response_model=GrantUploadOut,
    responses=UPLOAD_PROBLEMS, openapi_extra=CSV_BODY,
)
async def upload_grants(
    campaign_id: uuid.UUID, request: Request, principal: Granter, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep, background: BackgroundTasks,
    filename: Annotated[text(200) | None, Query(description="the file's name, kept for the record")] = None,
):
    """Grant by CSV (operator, or the campaign's partner key). Accepted at once (202, `Location`
    of the status); then every row is checked and, only if all are good, all are granted in one
    transaction. Poll the status: validating → granting → done, or rejected with every bad row
    (nothing granted). Rows whose row key was already granted with the same content are skipped,
    so uploading a file again is harmless."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType(f"Send the file as text/csv, not {media_type or 'nothing'}.")
    # Who may upload here is settled before the file is read (up to `max_upload_bytes`).
    campaign = service.campaign_to_upload_to(await access.grant_campaign(session, principal, campaign_id))
    if replay := await idem.replay():
        return replay
    upload = await service.accept_upload(
        session, clock, Actor.of(principal), campaign, await request.body(), filename,
        partner_key_id=access.own_partner_key(principal),
    )
    location = f"/v1/campaigns/{campaign_id}/grant-uploads/{upload.id}"
    response = await idem.respond(202, upload_out(upload, []))
    response.headers["Location"] = location
    # After the response, hence after the commit: the worker must find the upload.
    background.add_task(tasks.start, request.app.state, upload.id)
    return response


@router.get("/campaigns/{campaign_id}/grant-uploads", response_model=Page[GrantUploadOut], responses=PROBLEMS)
async def list_uploads(
    campaign_id: uuid.UUID, principal: GrantReader, session: SessionDep, cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[GrantUploadOut]:
    found = await service.list_uploads(
        session, await access.grant_campaign(session, principal, campaign_id),
        partner_key_id=access.own_partner_key(principal), after_id=decode_cursor(cursor), limit=limit + 1,
    )
    return page_of([upload_out(u, []) for u in found], [u.id for u in found], limit)


@router.get(
    "/campaigns/{campaign_id}/grant-uploads/{upload_id}", response_model=GrantUploadOut, responses=PROBLEMS,
)
async def get_upload(
    campaign_id: uuid.UUID, upload_id: uuid.UUID, principal: GrantReader, session: SessionDep, request: Request,
    background: BackgroundTasks,
) -> JSONResponse:
    """An upload's status and progress, and its first problems if it was rejected. Reading it
    takes no lock the worker needs. An upload whose worker died (a restart) is taken up again."""
    upload = await access.upload(session, principal, campaign_id, upload_id)
    errors = await service.upload_errors(session, upload, after_id=None, limit=FIRST_ERRORS)
    if upload.status in IN_PROGRESS:
        background.add_task(tasks.start, request.app.state, upload.id)
    body = upload_out(upload, [GrantUploadErrorOut.model_validate(e) for e in errors])
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"}, background=background)


@router.get(
    "/campaigns/{campaign_id}/grant-uploads/{upload_id}/errors", response_model=Page[GrantUploadErrorOut],
    responses=PROBLEMS,
)
async def list_upload_errors(
    campaign_id: uuid.UUID, upload_id: uuid.UUID, principal: GrantReader, session: SessionDep,
    cursor: CursorParam = None, limit: LimitParam = 200,
) -> Page[GrantUploadErrorOut]:
    """Every problem of a rejected upload, in line order."""
    found = await service.upload_errors(
        session, await access.upload(session, principal, campaign_id, upload_id), after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    return page_of([GrantUploadErrorOut.model_validate(e) for e in found], [e.id for e in found], limit)


# --- partner keys -----------------------------------------------------------------------------


@router.post(
    "/campaigns/{campaign_id}/partner-keys", status_code=201, response_model=PartnerKeyCreated, responses=PROBLEMS,
)
async def create_partner_key(
    campaign_id: uuid.UUID, body: PartnerKeyCreate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """A key for a partner system (a health-event organiser, a volunteer centre) that may grant
    in this one grant campaign and read its own grants. The secret is shown once (audited)."""
    if replay := await idem.replay():
        return replay
    key, secret = await service.create_partner_key(
        session, clock, Actor.of(principal), await access.campaign(session, principal, campaign_id), body.name
    )
    return await idem.respond(201, PartnerKeyCreated(**PartnerKeyOut.model_validate(key).model_dump(), secret=secret))


@router.get("/campaigns/{campaign_id}/partner-keys", response_model=list[PartnerKeyOut], responses=PROBLEMS)
async def list_partner_keys(campaign_id: uuid.UUID, principal: Overseer, session: SessionDep) -> list[PartnerKeyOut]:
    keys = await service.list_partner_keys(session, await access.campaign(session, principal, campaign_id))
    return [PartnerKeyOut.model_validate(k) for k in keys]


@router.delete(
    "/campaigns/{campaign_id}/partner-keys/{key_id}", response_model=PartnerKeyOut, responses=PROBLEMS,
)
async def revoke_partner_key(
    campaign_id: uuid.UUID, key_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Revoke a partner key at once (audited)."""
    if replay := await idem.replay():
        return replay
    key = await service.revoke_partner_key(
        session, clock, Actor.of(principal), await access.campaign(session, principal, campaign_id), key_id
    )
    return await idem.respond(200, PartnerKeyOut.model_validate(key))
