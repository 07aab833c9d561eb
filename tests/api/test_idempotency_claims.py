"""`Idempotency-Key` claims within the request's deadline (api/idempotency.py).

A repeat that finds the first request still running waits only until its own deadline
(409 with Retry-After); a claim older than the route's deadline belongs to a request
that died and is taken over at once, not after minutes; and the outcome a request
writes late — after its claim was taken over — never touches the newer claim.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from api import idempotency
from api.deadlines import Deadline
from api.errors import ApiError
from tests.support.polling import eventually

ROUTE = "POST /v1/test"


async def _run(
    pool: asyncpg.Pool, key: str, answer: idempotency.Answer, *, gate: asyncio.Event | None = None
) -> tuple[int, dict[str, object], str | None]:
    async def handler() -> idempotency.Answer:
        if gate is not None:
            await gate.wait()
        return answer

    response = await idempotency.run_once(
        pool,
        client_name="claims-test",
        key=key,
        route=ROUTE,
        body={"same": True},
        handler=handler,
        deadline=Deadline.after(1.0),
    )
    return (
        response.status_code,
        json.loads(bytes(response.body)),
        response.headers.get("Idempotent-Replayed"),
    )


async def _claimed(pool: asyncpg.Pool, key: str) -> None:
    """Wait until the first request has claimed `key` (its handler then holds the gate)."""
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM api_idempotency_keys"
            " WHERE client_name = 'claims-test' AND idempotency_key = $1",
            key,
        ),
        lambda rows: rows == 1,
        seconds=10,
        interval=0.02,
    )


@pytest.mark.slow
async def test_a_repeat_waits_within_its_deadline_then_409_with_retry_after(
    db_pool: asyncpg.Pool,
) -> None:
    key = uuid.uuid4().hex
    gate = asyncio.Event()
    first = asyncio.create_task(_run(db_pool, key, idempotency.Answer(201, {"n": 1}), gate=gate))
    try:
        await _claimed(db_pool, key)
        with pytest.raises(ApiError) as refused:
            await _run(db_pool, key, idempotency.Answer(201, {"n": 2}))
        assert refused.value.status == 409
        assert refused.value.code == "request_in_progress"
        assert refused.value.headers == {"Retry-After": "1"}
    finally:
        gate.set()
    assert await first == (201, {"n": 1}, None)
    assert await _run(db_pool, key, idempotency.Answer(201, {"n": 3})) == (201, {"n": 1}, "true")


async def test_a_claim_past_its_deadline_is_taken_over_and_its_late_outcome_is_dropped(
    db_pool: asyncpg.Pool,
) -> None:
    key = uuid.uuid4().hex
    gate = asyncio.Event()
    stuck = asyncio.create_task(_run(db_pool, key, idempotency.Answer(201, {"n": 1}), gate=gate))
    try:
        await _claimed(db_pool, key)
        # As if the first request had claimed the key longer ago than its deadline
        # plus the margin (a live request has answered by then: this one died).
        await db_pool.execute(
            """
            UPDATE api_idempotency_keys SET created_at = now() - make_interval(secs => $2)
            WHERE client_name = 'claims-test' AND idempotency_key = $1
            """,
            key,
            1.0 + idempotency.TAKEOVER_MARGIN_SECONDS + 1,
        )
        assert await _run(db_pool, key, idempotency.Answer(201, {"n": 2})) == (201, {"n": 2}, None)
    finally:
        gate.set()
    # The first request's outcome comes last and is written over its own claim only.
    assert await stuck == (201, {"n": 1}, None)
    assert await _run(db_pool, key, idempotency.Answer(201, {"n": 3})) == (201, {"n": 2}, "true")
