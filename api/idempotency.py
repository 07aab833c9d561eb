"""`Idempotency-Key` for the API's own POST and PUT routes (SPEC 5).

The same key with the same body returns the first answer instead of doing the work
twice; the same key with another body (or on another route) is a 422; the same key
while the first request still runs waits a little for it, then answers 409. Records
live 24 h in Postgres, because Temporal's update-id deduplication ends at
continue-as-new. Answers of 5xx and 202 are not final and not kept, so a retry after an
outage (or after "still working") asks again.

A request claims its key ("running") before it runs and writes its outcome after
(the answer, or the claim removed). When Postgres goes away in between, the outcome is
written in the background as soon as Postgres is back (`_settle`), so the key is not
held "running" until the abandoned-claim takeover two minutes later — the client's
retries would get 409 all that time (found by bench/restarts.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi.responses import JSONResponse

from api.errors import ApiError
from onramp.db import DATABASE_UNAVAILABLE_ERRORS
from onramp.logging import log_event

# A record still "running" after this long belongs to a request that died mid-way
# (a crashed API process); another request with the same key may take it over.
ABANDONED_AFTER_SECONDS = 120.0
# How long an outcome that Postgres could not take is retried in the background; past
# it (Postgres away for longer), the takeover above frees the key. Shorter than the
# takeover, so a late background write never removes a retry's fresh claim.
SETTLE_WITHIN_SECONDS = 60.0
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


async def run_once(
    pool: asyncpg.Pool,
    *,
    client_name: str,
    key: str | None,
    route: str,
    body: Any,
    handler: Callable[[], Awaitable[Answer]],
    wait_for_running: float = 10.0,
) -> JSONResponse:
    """Run `handler` once per (client, key); replay its answer to repeats."""
    if key is None:
        answer = await handler()
        return JSONResponse(answer.body, status_code=answer.status)
    if not 1 <= len(key) <= 255:
        raise ApiError(422, "validation_error", "Idempotency-Key must be 1 to 255 characters")
    digest = request_hash(route, body)
    deadline = time.monotonic() + wait_for_running
    while True:
        claimed = await pool.fetchval(
            """
            INSERT INTO api_idempotency_keys (client_name, idempotency_key, route, request_hash)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (client_name, idempotency_key) DO UPDATE
                SET route = EXCLUDED.route, request_hash = EXCLUDED.request_hash,
                    state = 'running', response_status = NULL, response_body = NULL,
                    created_at = now(), expires_at = now() + interval '24 hours'
                WHERE api_idempotency_keys.expires_at < now()
                   OR (api_idempotency_keys.state = 'running'
                       AND api_idempotency_keys.request_hash = EXCLUDED.request_hash
                       AND api_idempotency_keys.created_at
                           < now() - make_interval(secs => $5))
            RETURNING true
            """,
            client_name,
            key,
            route,
            digest,
            ABANDONED_AFTER_SECONDS,
        )
        if claimed:
            return await _run_and_record(pool, client_name, key, handler)
        record = await pool.fetchrow(
            """
            SELECT route, request_hash, state, response_status, response_body
            FROM api_idempotency_keys WHERE client_name = $1 AND idempotency_key = $2
            """,
            client_name,
            key,
        )
        if record is None:  # deleted meanwhile (the first attempt failed with a 5xx)
            continue
        if record["route"] != route or record["request_hash"] != digest:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request",
            )
        if record["state"] == "completed":
            return JSONResponse(
                json.loads(record["response_body"]),
                status_code=record["response_status"],
                headers={"Idempotent-Replayed": "true"},
            )
        if time.monotonic() >= deadline:
            raise ApiError(
                409,
                "request_in_progress",
                "A request with this Idempotency-Key is still in progress; retry later",
            )
        await asyncio.sleep(0.1)


async def _run_and_record(
    pool: asyncpg.Pool, client_name: str, key: str, handler: Callable[[], Awaitable[Answer]]
) -> JSONResponse:
    try:
        answer = await handler()
    except ApiError as error:
        if error.status >= 500:
            await _settle(lambda: _forget(pool, client_name, key))
        else:
            body = {"error": {"code": error.code, "message": error.message}, **error.extra}
            final = Answer(error.status, body)
            await _settle(lambda: _record(pool, client_name, key, final))
        raise
    except BaseException:
        await _settle(lambda: _forget(pool, client_name, key))
        raise
    if answer.status >= 500 or answer.status == 202:
        # Not final: a retry must look again (it reaches the same entity by its id).
        await _settle(lambda: _forget(pool, client_name, key))
    else:
        await _settle(lambda: _record(pool, client_name, key, answer))
    return JSONResponse(answer.body, status_code=answer.status)


async def _settle(write: Callable[[], Awaitable[None]]) -> None:
    """Write a request's outcome now; if Postgres is away, go on trying in the
    background and fail this request (the client sees 503 and retries)."""
    try:
        await write()
    except DATABASE_UNAVAILABLE_ERRORS:
        task = asyncio.create_task(_settle_later(write))
        _settling.add(task)
        task.add_done_callback(_settling.discard)
        raise


async def _settle_later(write: Callable[[], Awaitable[None]]) -> None:
    deadline = time.monotonic() + SETTLE_WITHIN_SECONDS
    pause = 0.2
    reason = "Postgres unavailable"
    while time.monotonic() < deadline:
        await asyncio.sleep(pause)
        try:
            await write()
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


async def _record(pool: asyncpg.Pool, client_name: str, key: str, answer: Answer) -> None:
    await pool.execute(
        """
        UPDATE api_idempotency_keys
        SET state = 'completed', response_status = $3, response_body = $4::jsonb
        WHERE client_name = $1 AND idempotency_key = $2
        """,
        client_name,
        key,
        answer.status,
        json.dumps(answer.body, default=str),
    )


async def _forget(pool: asyncpg.Pool, client_name: str, key: str) -> None:
    await pool.execute(
        "DELETE FROM api_idempotency_keys WHERE client_name = $1 AND idempotency_key = $2",
        client_name,
        key,
    )
