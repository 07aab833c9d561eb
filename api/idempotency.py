"""`Idempotency-Key` for the API's own POST and PUT routes.

The same key with the same body returns the first answer instead of doing the work
twice; the same key with another body (or on another route) is a 422; the same key
while the first request still runs waits for it within the request's own deadline,
then answers 409 with Retry-After. Records live 24 h in Postgres, because Temporal's
update-id deduplication ends at continue-as-new. Answers of 5xx and 202 are not final
and not kept, so a retry after an outage (or after "still working") asks again — and,
the key naming the workflow and update ids, reaches the same operation in Temporal and
answers with its outcome.

A request claims its key ("running") before it runs and writes its outcome after (the
answer, or the claim removed). Every claim carries a random claim id (kept in
`response_body` while running) and every outcome is written only over its own claim,
so a late write — one Postgres took after its request gave up — never touches a newer
claim. When Postgres goes away in between, the outcome is written in the background as
soon as Postgres is back (`_settle`), so the key is not held "running" until the
abandoned-claim takeover (found by bench/restarts.py: retried signups got 409 for two
minutes). Every request ends by its deadline, so a claim older than the deadline (plus
a margin for its Postgres writes) belongs to a request that died: it is taken over.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from api.deadlines import Deadline
from api.deps import Pool
from api.errors import ApiError
from onramp.db import DATABASE_UNAVAILABLE_ERRORS
from onramp.logging import log_event

# A running claim older than its route's deadline plus this belongs to a request that
# died mid-way (a crashed API process): a live one has answered by its deadline and
# written its outcome within a few bounded Postgres writes after it.
TAKEOVER_MARGIN_SECONDS = 15.0
# How long an outcome that Postgres could not take is retried in the background; past
# it (Postgres away for longer), the takeover above frees the key.
SETTLE_WITHIN_SECONDS = 60.0
# A claim whose INSERT timed out may still be applied when a hung Postgres resumes
# (the statement waits in the server's socket buffer): its removal runs once more
# this long after Postgres first answers again.
LATE_CLAIM_RECHECK_SECONDS = 2.0
_settling: set[asyncio.Task[None]] = set()
logger = logging.getLogger(__name__)
_KEY_NAMESPACE = uuid.UUID("5c1f3a52-8a0e-4c3e-9d8a-6f6e72616d70")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def request_hash(route: str, body: Any) -> str:
    canonical = json.dumps({"route": route, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def stable_id(client_name: str, key: str) -> str:
    """An id derived from the key, so that a retried request names the same entity."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{client_name}:{key}"))


@dataclass(frozen=True)
class _Claim:
    client_name: str
    key: str
    claim_id: str


async def run_once(
    pool: asyncpg.Pool,
    *,
    client_name: str,
    key: str | None,
    route: str,
    body: Any,
    handler: Callable[[], Awaitable[Answer]],
    deadline: Deadline,
) -> JSONResponse:
    """Run `handler` once per (client, key); replay its answer to repeats.

    `deadline` is the request's: a repeat that finds the first request still running
    waits for it until then (and the handler spends the same deadline).
    """
    if key is None:
        answer = await handler()
        return JSONResponse(answer.body, status_code=answer.status)
    if not 1 <= len(key) <= 255:
        raise ApiError(422, "validation_error", "Idempotency-Key must be 1 to 255 characters")
    digest = request_hash(route, body)
    while True:
        claim = _Claim(client_name, key, uuid.uuid4().hex)
        if await _take(pool, claim, route, digest, deadline):
            return await _run_and_record(pool, claim, handler)
        record = await _existing(pool, claim, route, digest)
        if record is None:  # deleted meanwhile (the first attempt failed with a 5xx)
            continue
        if record["state"] == "completed":
            return JSONResponse(
                json.loads(record["response_body"]),
                status_code=record["response_status"],
                headers={"Idempotent-Replayed": "true"},
            )
        if deadline.expired:
            raise ApiError(
                409,
                "request_in_progress",
                "A request with this Idempotency-Key is still in progress; retry later",
                headers={"Retry-After": "1"},
            )
        await asyncio.sleep(min(0.1, deadline.remaining()))


async def _take(
    pool: asyncpg.Pool, claim: _Claim, route: str, digest: str, deadline: Deadline
) -> bool:
    """Claim the key: a new one, an expired one, or one abandoned by a request that died."""
    try:
        claimed = await pool.fetchval(
            """
            INSERT INTO api_idempotency_keys
                (client_name, idempotency_key, route, request_hash, response_body)
            VALUES ($1, $2, $3, $4, $6::jsonb)
            ON CONFLICT (client_name, idempotency_key) DO UPDATE
                SET route = EXCLUDED.route, request_hash = EXCLUDED.request_hash,
                    state = 'running', response_status = NULL,
                    response_body = EXCLUDED.response_body,
                    created_at = now(), expires_at = now() + interval '24 hours'
                WHERE api_idempotency_keys.expires_at < now()
                   OR (api_idempotency_keys.state = 'running'
                       AND api_idempotency_keys.request_hash = EXCLUDED.request_hash
                       AND api_idempotency_keys.created_at
                           < now() - make_interval(secs => $5))
            RETURNING true
            """,
            claim.client_name,
            claim.key,
            route,
            digest,
            deadline.seconds + TAKEOVER_MARGIN_SECONDS,
            json.dumps({"claim": claim.claim_id}),
        )
    except DATABASE_UNAVAILABLE_ERRORS:
        # Whether the claim was taken is unknown: remove it, if it was, once
        # Postgres answers again, so the client's retry is not told 409.
        _settle_in_background(functools.partial(_forget, pool, claim), recheck=True)
        raise
    return bool(claimed)


async def _existing(
    pool: asyncpg.Pool, claim: _Claim, route: str, digest: str
) -> asyncpg.Record | None:
    """The key's record (None if it was just removed); 422 if it was used for another
    request."""
    record = await pool.fetchrow(
        """
        SELECT route, request_hash, state, response_status, response_body
        FROM api_idempotency_keys WHERE client_name = $1 AND idempotency_key = $2
        """,
        claim.client_name,
        claim.key,
    )
    if record is not None and (record["route"] != route or record["request_hash"] != digest):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request",
        )
    return record


async def _run_and_record(
    pool: asyncpg.Pool, claim: _Claim, handler: Callable[[], Awaitable[Answer]]
) -> JSONResponse:
    try:
        answer = await handler()
    except ApiError as error:
        if error.status >= 500:
            await _settle(lambda: _forget(pool, claim))
        else:
            body = {"error": {"code": error.code, "message": error.message}, **error.extra}
            final = Answer(error.status, body)
            await _settle(lambda: _record(pool, claim, final))
        raise
    except BaseException:
        await _settle(lambda: _forget(pool, claim))
        raise
    if answer.status >= 500 or answer.status == 202:
        # Not final: a retry must look again (it reaches the same entity by its id).
        await _settle(lambda: _forget(pool, claim))
    else:
        await _settle(lambda: _record(pool, claim, answer))
    return JSONResponse(answer.body, status_code=answer.status)


async def _settle(write: Callable[[], Awaitable[None]]) -> None:
    """Write a request's outcome now; if Postgres is away, go on trying in the
    background and fail this request (the client sees 503 and retries)."""
    try:
        await write()
    except DATABASE_UNAVAILABLE_ERRORS:
        _settle_in_background(write)
        raise


def _settle_in_background(write: Callable[[], Awaitable[None]], *, recheck: bool = False) -> None:
    task = asyncio.create_task(_settle_later(write, recheck=recheck))
    _settling.add(task)
    task.add_done_callback(_settling.discard)


async def _settle_later(write: Callable[[], Awaitable[None]], *, recheck: bool) -> None:
    deadline = time.monotonic() + SETTLE_WITHIN_SECONDS
    pause = 0.2
    reason = "Postgres unavailable"
    while time.monotonic() < deadline:
        await asyncio.sleep(pause)
        try:
            await write()
            if recheck:
                recheck = False
                pause = LATE_CLAIM_RECHECK_SECONDS
                continue
        except DATABASE_UNAVAILABLE_ERRORS:
            pause = min(pause * 2, 2.0)
            continue
        except Exception as error:  # the pool closed (shutdown): the takeover frees the key
            reason = type(error).__name__
            break
        return
    log_event(
        logger, "IDEMPOTENCY_OUTCOME_NOT_WRITTEN", logging.WARNING,
        seconds=SETTLE_WITHIN_SECONDS, reason=reason,
    )  # fmt: skip


async def _record(pool: asyncpg.Pool, claim: _Claim, answer: Answer) -> None:
    await pool.execute(
        """
        UPDATE api_idempotency_keys
        SET state = 'completed', response_status = $4, response_body = $5::jsonb
        WHERE client_name = $1 AND idempotency_key = $2
          AND state = 'running' AND response_body ->> 'claim' = $3
        """,
        claim.client_name,
        claim.key,
        claim.claim_id,
        answer.status,
        json.dumps(answer.body, default=str),
    )


async def _forget(pool: asyncpg.Pool, claim: _Claim) -> None:
    await pool.execute(
        """
        DELETE FROM api_idempotency_keys
        WHERE client_name = $1 AND idempotency_key = $2
          AND state = 'running' AND response_body ->> 'claim' = $3
        """,
        claim.client_name,
        claim.key,
        claim.claim_id,
    )


@dataclass(frozen=True)
class IdempotentRequest:
    """A POST or PUT with its optional `Idempotency-Key`, handed to routes by the
    `Idempotency` dependency: the route names its client and body, and `run` does
    its work once per key (`run_once`)."""

    pool: asyncpg.Pool
    route: str
    key: str | None

    def id_for(self, client_name: str, scope: str = "") -> str:
        """An id the key names (so a retry names the same entity); else a fresh one."""
        if self.key is None:
            return str(uuid.uuid4())
        return stable_id(client_name, f"{scope}{self.key}")

    async def run(
        self,
        client_name: str,
        body: Any,
        deadline: Deadline,
        handler: Callable[[], Awaitable[Answer]],
    ) -> JSONResponse:
        return await run_once(
            self.pool,
            client_name=client_name,
            key=self.key,
            route=self.route,
            body=body,
            handler=handler,
            deadline=deadline,
        )


async def _idempotency(
    request: Request, pool: Pool, idempotency_key: Annotated[str | None, Header()] = None
) -> IdempotentRequest:
    # The route's method and path template ("POST /v1/users/{user_id}/...") scope a key.
    route = request.scope["route"].path
    return IdempotentRequest(pool, f"{request.method} {route}", idempotency_key)


Idempotency = Annotated[IdempotentRequest, Depends(_idempotency)]
