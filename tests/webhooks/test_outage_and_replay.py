"""Temporal goes down mid-test: webhooks are still acknowledged (200) and stay `pending`
while the API's dispatcher retries them; once Temporal is back the dispatcher delivers
every one of them by itself (no Stripe redelivery, no replay), each with its effect once.
The operator's `onramp webhooks replay` still dispatches what is left."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from api.app import create_app
from devstack.processes import find_executable
from devstack.stripe_events import create_user, event_body, event_id_of, sign, stripe_id
from devstack.stripe_receivers import RECEIVERS, OnboardingReceiver, SubscriptionReceiver
from onramp.settings import ApiSettings
from tests.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRETS, make_api_settings
from tests.support.api_server import serve_app
from tests.support.polling import eventually
from tests.webhooks.own_temporal import OwnTemporal

pytestmark = pytest.mark.slow


PATH = "/v1/webhooks/stripe"
SECRET = WEBHOOK_SECRETS[0]
RPC_TIMEOUT = 1.5


@pytest.fixture
async def own_temporal(tmp_path: Path) -> AsyncIterator[OwnTemporal]:
    server = OwnTemporal(tmp_path)
    try:
        yield server
    finally:
        await server.stop()


async def _replay(settings: ApiSettings, *args: str) -> tuple[int, str]:
    """`onramp webhooks replay …` as an operator runs it, in a child process."""
    onramp = find_executable("onramp")
    argv = [onramp] if onramp else [sys.executable, "-m", "onramp"]
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "TEMPORAL_RPC_TIMEOUT_SECONDS": str(RPC_TIMEOUT),
    }
    process = await asyncio.create_subprocess_exec(
        *argv,
        "webhooks",
        "replay",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode() + stderr.decode()


async def _statuses(db: asyncpg.Pool, event_ids: list[str]) -> list[str]:
    rows = await db.fetch(
        "SELECT event_id, status FROM webhook_events WHERE event_id = ANY($1::text[])", event_ids
    )
    by_id = {row["event_id"]: row["status"] for row in rows}
    return [by_id.get(event_id, "missing") for event_id in event_ids]


async def test_an_outage_is_acknowledged_and_the_dispatcher_delivers_each_once_when_back(
    own_temporal: OwnTemporal, database_url: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    client = await own_temporal.start()
    settings = make_api_settings(
        database_url,
        own_temporal.address,
        task_queue,
        temporal_rpc_timeout_seconds=RPC_TIMEOUT,
        webhook_dispatch_retry_max_seconds=2.0,
    )
    customers = [stripe_id("cus") for _ in range(2)]
    users = [await create_user(db_pool, customer=customer) for customer in customers]
    account = stripe_id("acct")
    onboarding_user = await create_user(db_pool, account=account)

    before = event_body("invoice.created", {"id": stripe_id("in"), "customer": customers[0]})
    during = [
        event_body("invoice.paid", {"id": stripe_id("in"), "customer": customers[0]}),
        event_body(
            "customer.subscription.updated", {"id": stripe_id("sub"), "customer": customers[1]}
        ),
        event_body("account.updated", {"id": account, "object": "account"}, account=account),
    ]
    during_ids = [event_id_of(body) for body in during]

    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        # Temporal up: dispatched right after the answer.
        async with Worker(client, task_queue=task_queue, workflows=RECEIVERS):
            response = await http.post(PATH, content=before, headers=sign(before, SECRET))
            assert response.status_code == 200
            await _wait_applied(client, f"subscription-{users[0]}", [event_id_of(before)])

        await own_temporal.stop()

        # Temporal down: acknowledged all the same (stored), and pending.
        answers = await asyncio.gather(
            *(http.post(PATH, content=body, headers=sign(body, SECRET)) for body in during)
        )
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert {answer.json()["status"] for answer in answers} == {"pending"}
        # The dispatcher tries, fails, and keeps them pending for another try.
        await eventually(
            lambda: _attempted(db_pool, during_ids),
            lambda rows: all(status == "pending" and error for status, error in rows),
            seconds=30,
        )

        # Back, with the same history on the same port: no replay, no redelivery.
        client = await own_temporal.start()
        async with Worker(client, task_queue=task_queue, workflows=RECEIVERS):
            await eventually(
                lambda: _statuses(db_pool, during_ids),
                lambda statuses: statuses == ["dispatched"] * 3,
                seconds=30,
            )
            await _wait_applied(
                client, f"subscription-{users[0]}", [event_id_of(before), during_ids[0]]
            )
            await _wait_applied(client, f"subscription-{users[1]}", [during_ids[1]])
            await _wait_applied(
                client, f"onboarding-{onboarding_user}", [during_ids[2]], OnboardingReceiver
            )

            # Stripe's own retry of a delivered event: 200, no second effect.
            retry = await http.post(PATH, content=during[0], headers=sign(during[0], SECRET))
            assert retry.status_code == 200 and retry.json()["duplicate"] is True
            handle = client.get_workflow_handle(f"subscription-{users[0]}")
            assert await handle.query(SubscriptionReceiver.signals_received) == 2


async def test_the_replay_dispatches_what_no_dispatcher_took(
    own_temporal: OwnTemporal, database_url: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Without a running dispatcher (API down, or a `failed` row): the operator's replay
    says Temporal is unreachable while it is, and delivers once it is back."""
    settings = make_api_settings(
        database_url,
        own_temporal.address,
        task_queue,
        temporal_rpc_timeout_seconds=RPC_TIMEOUT,
        webhook_dispatcher_enabled=False,
    )
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    since = (await db_pool.fetchval("SELECT now()")).isoformat()
    bodies = [
        event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer}) for _ in range(2)
    ]
    ids = [event_id_of(body) for body in bodies]
    async with (
        serve_app(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        for body in bodies:
            response = await http.post(PATH, content=body, headers=sign(body, SECRET))
            assert response.status_code == 200 and response.json()["status"] == "pending"

    code, output = await _replay(settings, "--id", ids[0], "--id", ids[1], "--since", since)
    assert code == 1, output
    assert "unavailable 1" in output and "left_pending 1" in output
    assert await _statuses(db_pool, ids) == ["pending"] * 2

    client = await own_temporal.start()
    code, output = await _replay(settings, "--id", ids[0], "--id", ids[1], "--since", since)
    assert code == 0, output
    assert "dispatched 2" in output, output
    async with Worker(client, task_queue=task_queue, workflows=RECEIVERS):
        await _wait_applied(client, f"subscription-{user_id}", ids)
    code, output = await _replay(settings, "--failed", "--pending", "--id", ids[0])
    assert code == 0 and "dispatched 0" in output, output


async def _attempted(db: asyncpg.Pool, event_ids: list[str]) -> list[tuple[str, str | None]]:
    rows = await db.fetch(
        "SELECT event_id, status, last_error FROM webhook_events WHERE event_id = ANY($1::text[])",
        event_ids,
    )
    by_id = {row["event_id"]: (row["status"], row["last_error"]) for row in rows}
    return [by_id.get(event_id, ("missing", None)) for event_id in event_ids]


async def _wait_applied(
    client: Client,
    workflow_id: str,
    expected: list[str],
    receiver: type[SubscriptionReceiver] | type[OnboardingReceiver] = SubscriptionReceiver,
    seconds: float = 20.0,
) -> None:
    handle = client.get_workflow_handle(workflow_id)
    deadline = asyncio.get_running_loop().time() + seconds
    applied: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        try:
            applied = await handle.query(receiver.applied)
        except RPCError as error:  # not started yet: the dispatcher sends after the answer
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        if applied == expected:
            return
        await asyncio.sleep(0.1)  # the poll interval of a wait on a condition
    raise AssertionError(f"{workflow_id} applied {applied}, expected {expected}")
