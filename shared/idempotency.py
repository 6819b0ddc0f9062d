"""Idempotency-Key handling (DESIGN.md invariant 6).

The key is claimed by inserting its row in the request's own transaction before any effect.
A concurrent twin blocks on that row until the first commits, then finds the stored response and
returns it; if the first rolls back (a business error), nothing was stored and the twin runs as
the first. Same key with a different body: 422. So a retry never moves money twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.auth import CurrentPrincipal
from shared.clock import Clock
from shared.db import SessionDep
from shared.errors import PROBLEM_JSON, BadRequest, Problem, Unprocessable, problem_response
from shared.models import IdempotencyRecord

REPLAY_HEADER = "Idempotent-Replayed"

# Built once, run with parameters: every state-changing request claims and records a key, and
# building these statements per request (the ORM's insert/update values) cost more app CPU than
# running them (bench/RESULTS.md, 2026-12-01).
_records = IdempotencyRecord.__table__
_CLAIM = (
    insert(_records)
    .values(caller=bindparam("caller"), key=bindparam("key"), request_hash=bindparam("request_hash"),
            created_at=bindparam("created_at"))
    .on_conflict_do_nothing()
    .returning(_records.c.key)
)
_FIRST = select(_records.c.request_hash, _records.c.status_code, _records.c.response).where(
    _records.c.caller == bindparam("caller"), _records.c.key == bindparam("key")
)
_RECORD = (
    update(_records)
    .where(_records.c.caller == bindparam("of_caller"), _records.c.key == bindparam("of_key"))
    .values(status_code=bindparam("status_code"), response=bindparam("response"))
)


# Turns a stored answer into the response's JSON content (an endpoint whose answers a database
# function stores, see `Idempotency.claim`).
Render = Callable[[Any], Awaitable[Any]]


class KeptRefusal(Exception):
    """A refusal whose effect so far must last although the request is refused: a wrong PIN counts
    toward the card's lock-out. The service raises it with the problem to answer; the endpoint
    hands it to `Idempotency.refuse`, which stores that answer for the key, and the request's one
    commit keeps both. So the effect needs no second connection, and a retry with the same key
    gets the same answer without being counted again. Raise it only when the transaction holds
    nothing but the effect to keep; an endpoint that does not expect it answers 500."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class IdempotencyKeyRepeated(BadRequest):
    slug, title = "idempotency-key-repeated", "The request carries more than one Idempotency-Key header"


class IdempotencyKeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency-Key was already used with a different request"


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


class Idempotency:
    """A request's key. The body is read (to fingerprint the request) only when the key is first
    used, so that an endpoint taking a large upload authorises the caller before reading it."""

    def __init__(self, session: Any, clock: Clock, caller: str, key: str, request: Request) -> None:
        self.session = session
        self.clock = clock
        self.caller = caller
        self.key = key
        self._request = request
        self._fingerprint: str | None = None

    async def replay(self) -> JSONResponse | None:
        """Claim the key; if an earlier request holds it, return that request's response."""
        claimed = await self.session.execute(_CLAIM, {**await self.claim(), "created_at": self.clock.now()})
        if claimed.first() is not None:
            return None
        record = (await self.session.execute(_FIRST, {"caller": self.caller, "key": self.key})).one()
        return await self.replayed(record.request_hash, record.status_code, record.response)

    async def claim(self) -> dict[str, Any]:
        """The key's claim, for a database function that claims it, makes the effect and stores
        its answer in one statement of the request's transaction (a hot path: wallet.buy_premium).
        The answer it stores is what the app shapes the response from (the purchase's id), so the
        endpoint shapes every answer to that key, first or replayed, in the same way (`render`):
        a replay is then the same text."""
        if self._fingerprint is None:
            request = self._request
            self._fingerprint = request_fingerprint(request.method, request.url.path, await request.body())
        return {"caller": self.caller, "key": self.key, "request_hash": self._fingerprint}

    async def replayed(self, request_hash: str, status_code: int, response: Any, render: Render | None = None
                       ) -> JSONResponse:
        """The answer to a key an earlier request claimed: its response, or 422 for another request."""
        assert self._fingerprint is not None, "a key is claimed before its first answer is replayed"
        if request_hash != self._fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; use a new key for a new request."
            )
        content = await render(response) if render is not None else response
        media_type = PROBLEM_JSON if status_code >= 400 else None  # a kept refusal
        return JSONResponse(content, status_code=status_code, headers={REPLAY_HEADER: "true"}, media_type=media_type)

    async def respond(self, status_code: int, body: BaseModel | None) -> JSONResponse:
        """Store the response beside the effect (same transaction) and return it."""
        content = body.model_dump(mode="json") if body is not None else None
        await self.session.execute(
            _RECORD, {"of_caller": self.caller, "of_key": self.key, "status_code": status_code, "response": content}
        )
        return JSONResponse(content, status_code=status_code)

    async def refuse(self, refused: KeptRefusal, request: Request) -> JSONResponse:
        """Store a kept refusal as this key's answer (same transaction as its effect) and return it."""
        response = problem_response(refused.problem, request)
        await self.session.execute(
            _RECORD,
            {"of_caller": self.caller, "of_key": self.key, "status_code": refused.problem.status,
             "response": json.loads(response.body)},
        )
        return response


# What an Idempotency-Key may be: printable ASCII, as a UUID or any client's key is.
KEY_PATTERN = r"^[!-~]+$"
KEY_MAX_LENGTH = 255
_KEY = re.compile(KEY_PATTERN)


def presented_key(request: Request) -> str | None:
    """The request's one well-formed Idempotency-Key, as the `idempotency` dependency accepts it,
    for an answer given before the dependencies (shared/early.py); None where the dependency must
    answer instead (no key, more than one, a malformed one)."""
    keys = request.headers.getlist("idempotency-key")
    if len(keys) != 1 or len(keys[0]) > KEY_MAX_LENGTH or not _KEY.fullmatch(keys[0]):
        return None
    return keys[0]


async def idempotency(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[
        str,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=KEY_MAX_LENGTH,
            pattern=KEY_PATTERN,
            description="Unique per intended effect; a retry with the same key and body returns the first response.",
        ),
    ],
) -> Idempotency:
    # A missing header is answered as 400 idempotency-key-missing by shared.errors.
    if len(request.headers.getlist("idempotency-key")) > 1:
        # Which one counts would depend on the proxy or framework: a retry could move money twice.
        raise IdempotencyKeyRepeated("Send exactly one Idempotency-Key header.")
    return Idempotency(session, request.app.state.clock, principal.caller, idempotency_key, request)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
