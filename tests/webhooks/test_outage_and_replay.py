"""Temporal goes down mid-test: webhooks answer 503 and stay `pending`; once it is back,
`onramp webhooks replay` dispatches every one of them, and each has its effect once."""

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
from temporalio.worker import Worker

from api.app import create_app
from onramp.processes import find_executable
from onramp.settings import ApiSettings
from tests.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRETS, make_api_settings
from tests.support.api_server import serve_app
from tests.webhooks.events import create_user, event_body, event_id_of, sign, stripe_id
from tests.webhooks.own_temporal import OwnTemporal
from tests.webhooks.receivers import RECEIVERS, OnboardingReceiver, SubscriptionReceiver

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


async def test_an_outage_leaves_events_pending_and_the_replay_delivers_each_once(
    own_temporal: OwnTemporal, database_url: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    client = await own_temporal.start()
    settings = make_api_settings(
        database_url, own_temporal.address, task_queue, temporal_rpc_timeout_seconds=RPC_TIMEOUT
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
        # Temporal up: dispatched at once (and the API now holds a connected client).
        async with Worker(client, task_queue=task_queue, workflows=RECEIVERS):
            response = await http.post(PATH, content=before, headers=sign(before, SECRET))
            assert response.json()["status"] == "dispatched"
            await _wait_applied(client, f"subscription-{users[0]}", [event_id_of(before)])

        await own_temporal.stop()
        # Replays below are scoped to this test's rows (the inbox is shared by the session).
        since = (await db_pool.fetchval("SELECT now()")).isoformat()

        # Temporal down: stored, 503, still pending (Stripe will retry).
        answers = await asyncio.gather(
            *(http.post(PATH, content=body, headers=sign(body, SECRET)) for body in during)
        )
        assert [answer.status_code for answer in answers] == [503, 503, 503]
        assert {answer.json()["error"]["code"] for answer in answers} == {"temporal_unavailable"}
        assert await _statuses(db_pool, during_ids) == ["pending"] * 3

        # A replay while it is still down says so and leaves everything pending.
        code, output = await _replay(
            settings, "--id", during_ids[0], "--id", during_ids[1], "--since", since
        )
        assert code == 1, output
        assert "unavailable 1" in output and "left_pending 1" in output
        assert await _statuses(db_pool, during_ids) == ["pending"] * 3

        # Back, with the same history on the same port.
        client = await own_temporal.start()
        code, output = await _replay(settings, "--since", since)
        assert code == 0, output
        assert "dispatched 3" in output, output
        assert await _statuses(db_pool, during_ids) == ["dispatched"] * 3

        async with Worker(client, task_queue=task_queue, workflows=RECEIVERS):
            await _wait_applied(
                client, f"subscription-{users[0]}", [event_id_of(before), during_ids[0]]
            )
            await _wait_applied(client, f"subscription-{users[1]}", [during_ids[1]])
            await _wait_applied(
                client, f"onboarding-{onboarding_user}", [during_ids[2]], OnboardingReceiver
            )

            # Stripe's own retry of an event the replay delivered: 200, no second effect.
            retry = await http.post(PATH, content=during[0], headers=sign(during[0], SECRET))
            assert retry.status_code == 200 and retry.json()["duplicate"] is True
            # The API's client reconnected by itself: a new event goes straight through.
            after = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customers[1]})
            response = await http.post(PATH, content=after, headers=sign(after, SECRET))
            assert response.status_code == 200 and response.json()["status"] == "dispatched"
            await _wait_applied(
                client, f"subscription-{users[1]}", [during_ids[1], event_id_of(after)]
            )
            handle = client.get_workflow_handle(f"subscription-{users[0]}")
            assert await handle.query(SubscriptionReceiver.signals_received) == 2

        # Nothing left to do: a second replay is a no-op that succeeds.
        code, output = await _replay(settings, "--failed", "--pending", "--since", since)
        assert code == 0 and "dispatched 0" in output, output


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
        applied = await handle.query(receiver.applied)
        if applied == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} applied {applied}, expected {expected}")
