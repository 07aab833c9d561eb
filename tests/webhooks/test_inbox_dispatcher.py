"""The inbox dispatcher: leases keep two dispatchers (two API processes) from sending one
event twice, no pooled connection is held across a Temporal call, and the inbox lag is
a metric."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.temporal_gateway import TemporalGateway
from api.webhooks.dispatch import Dispatcher
from api.webhooks.events import parse_event
from api.webhooks.inbox_dispatcher import InboxDispatcher
from devstack.stripe_events import create_user, event_body, sign, stripe_id, subscription_object
from devstack.stripe_receivers import SubscriptionReceiver
from onramp.repositories import webhook_events as webhook_inbox
from onramp.settings import ApiSettings
from tests.conftest import (
    ADMIN_KEY,
    WEBHOOK_SECRETS,
    auth,
    make_api_settings,
)
from tests.support.api_server import serve_app
from tests.support.polling import eventually, until

# The dispatcher's Temporal calls time out after this: longer than the pool reads a test
# makes while they hang (asserted under 2 s), short enough that draining a hung
# dispatcher does not hold the test up.
RPC_TIMEOUT = timedelta(seconds=3)


def _dispatcher(pool: asyncpg.Pool, settings: ApiSettings) -> InboxDispatcher:
    gateway = TemporalGateway(settings.temporal_address, settings.temporal_namespace, RPC_TIMEOUT)
    dispatcher = Dispatcher(
        pool, gateway, task_queue=settings.temporal_task_queue, livemode=False, via="dispatcher"
    )
    return InboxDispatcher(dispatcher, poll_seconds=0.05, max_in_flight=16)


async def _store(db: asyncpg.Pool, body: bytes) -> str:
    event = parse_event(body.decode())
    stored, _ = await webhook_inbox.store_event(db, event.to_inbox(body))
    assert stored
    return event.id


async def _statuses(db: asyncpg.Pool, ids: list[str]) -> dict[str, tuple[str, int]]:
    rows = await db.fetch(
        "SELECT event_id, status, attempts FROM webhook_events WHERE event_id = ANY($1::text[])",
        ids,
    )
    return {row["event_id"]: (row["status"], row["attempts"]) for row in rows}


@pytest.mark.slow
async def test_two_dispatchers_never_dispatch_one_event_twice(
    database_url: str, receivers: Client, webhook_settings: ApiSettings
) -> None:
    # Two API processes: two pools, two dispatchers, one inbox.
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=3) for _ in range(2)]
    try:
        assert pools[0] is not None and pools[1] is not None
        customers = [stripe_id("cus") for _ in range(40)]
        users = [await create_user(pools[0], customer=customer) for customer in customers]
        ids = [
            await _store(
                pools[0], event_body("customer.subscription.updated", subscription_object(c))
            )
            for c in customers
        ]
        dispatchers = [_dispatcher(pool, webhook_settings) for pool in pools]
        for dispatcher in dispatchers:
            dispatcher.start()
        try:
            statuses = await eventually(
                lambda: _statuses(pools[0], ids),
                lambda found: all(status == "dispatched" for status, _ in found.values()),
                seconds=60,
            )
        finally:
            for dispatcher in dispatchers:
                await dispatcher.stop()
        # Claimed once each (one attempt), whichever dispatcher took it.
        assert sorted(statuses.values()) == [("dispatched", 1)] * len(ids)
        for user_id, event_id in zip(users, ids, strict=True):
            handle = receivers.get_workflow_handle(f"subscription-{user_id}")
            assert await handle.query(SubscriptionReceiver.applied) == [event_id]
            assert await handle.query(SubscriptionReceiver.signals_received) == 1
    finally:
        for pool in pools:
            await pool.close()


@pytest.mark.slow
async def test_no_pooled_connection_is_held_while_temporal_does_not_answer(
    database_url: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Ten events for a Temporal that accepts connections and never answers: the
    dispatcher's pool (2 connections) stays free for the status reads meanwhile."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent = server.sockets[0].getsockname()[1]
    settings = make_api_settings(database_url, f"127.0.0.1:{silent}", task_queue)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    ids = []
    try:
        for _ in range(10):
            customer = stripe_id("cus")
            await create_user(db_pool, customer=customer)
            body = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
            ids.append(await _store(db_pool, body))
        dispatcher = _dispatcher(pool, settings)
        claimed = await dispatcher.run_once()
        assert claimed >= 10
        # Every call now waits on the silent server; the pool answers at once.
        started = time.monotonic()
        for _ in range(5):
            async with asyncio.timeout(2):
                assert await pool.fetchval("SELECT 1") == 1
        assert time.monotonic() - started < 2
        await dispatcher.drain()
        statuses = await _statuses(db_pool, ids)
        assert {status for status, _ in statuses.values()} == {"pending"}
    finally:
        await pool.close()
        server.close()
        await db_pool.execute(
            "UPDATE webhook_events SET status = 'ignored' WHERE event_id = ANY($1::text[])", ids
        )


def _gauge(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


@pytest.mark.slow
async def test_the_inbox_lag_is_a_metric_and_part_of_the_system_status(
    database_url: str, db_pool: asyncpg.Pool, temporal_env: WorkflowEnvironment, task_queue: str
) -> None:
    # No dispatcher in this API process: nothing takes the event, so the lag only grows.
    settings = make_api_settings(
        database_url,
        temporal_env.client.service_client.config.target_host,
        task_queue,
        webhook_dispatcher_enabled=False,
        system_check_interval_seconds=0.2,
        system_inbox_lag_alert_seconds=60,
    )
    customer = stripe_id("cus")
    await create_user(db_pool, customer=customer)
    body = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
    event_id = await _store(db_pool, body)
    await db_pool.execute(
        "UPDATE webhook_events SET received_at = now() - interval '10 minutes' WHERE event_id = $1",
        event_id,
    )
    try:
        async with (
            serve_app(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):

            async def lag() -> float:
                text = (await client.get("/metrics")).text
                return _gauge(text, "onramp_webhook_inbox_lag_seconds") or 0.0

            assert await eventually(lag, lambda value: value >= 600, seconds=15) >= 600
            status = (await client.get("/v1/admin/system", headers=auth(ADMIN_KEY))).json()
            inbox = status["components"]["webhook_inbox"]
            assert inbox["ok"] is False and inbox["state"] in ("lagging", "failed_events")
            assert status["webhook_inbox_lag_seconds"] >= 600
    finally:
        await db_pool.execute(
            "UPDATE webhook_events SET status = 'ignored' WHERE event_id = $1", event_id
        )


def _first_look_over(inbox: InboxDispatcher) -> bool:
    """The dispatcher has claimed once and its pool is idle: the claim's query is done, so
    an event stored from now on is found only by a wake-up or the next poll."""
    pool = inbox.dispatcher.pool
    return inbox._last_claim > float("-inf") and pool.get_idle_size() == pool.get_size()


@pytest.mark.slow
async def test_a_woken_dispatcher_sends_at_once_without_waiting_for_its_poll(
    database_url: str, db_pool: asyncpg.Pool, receivers: Client, webhook_settings: ApiSettings
) -> None:
    settings = webhook_settings.model_copy(update={"webhook_dispatch_poll_seconds": 60.0})
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    body = event_body("customer.subscription.updated", subscription_object(customer))
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url) as http:
        await until(lambda: _first_look_over(app.state.inbox_dispatcher), what="the first look")
        response = await http.post(
            "/v1/webhooks/stripe", content=body, headers=sign(body, WEBHOOK_SECRETS[0])
        )
        assert response.status_code == 200
        event_id = response.json()["event_id"]
        # The poll is a minute away: only the ingress's wake-up can send it this soon.
        await eventually(
            lambda: _statuses(db_pool, [event_id]),
            lambda found: found.get(event_id, ("", 0))[0] == "dispatched",
            seconds=20,
        )
    handle = receivers.get_workflow_handle(f"subscription-{user_id}")
    assert await handle.query(SubscriptionReceiver.signals_received) == 1


@pytest.mark.slow
async def test_webhooks_and_status_reads_answer_while_temporal_hangs(
    database_url: str, db_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Ten concurrent deliveries while Temporal accepts connections and never answers:
    each is acknowledged, and status reads answer while the dispatcher's calls still
    hang (before, each delivery held one of the pool's ten connections and a row lock
    for the whole call, and the reads waited behind them)."""
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    silent = server.sockets[0].getsockname()[1]
    settings = make_api_settings(
        database_url,
        f"127.0.0.1:{silent}",
        task_queue,
        temporal_rpc_timeout_seconds=20.0,
        webhook_dispatch_concurrency=16,
    )
    customers = [stripe_id("cus") for _ in range(10)]
    users = [await create_user(db_pool, customer=customer) for customer in customers]
    bodies = [
        event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
        for customer in customers
    ]
    ids = [parse_event(body.decode()).id for body in bodies]
    try:
        async with (
            serve_app(create_app(settings)) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            async with asyncio.timeout(15):  # a hang guard, not a measurement
                answers = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/webhooks/stripe",
                            content=body,
                            headers=sign(body, WEBHOOK_SECRETS[0]),
                        )
                        for body in bodies
                    )
                )
                assert [answer.status_code for answer in answers] == [200] * 10
                # The dispatcher has claimed them and its calls are hanging now.
                await eventually(
                    lambda: _statuses(db_pool, ids),
                    lambda found: all(attempts == 1 for _, attempts in found.values()),
                    seconds=10,
                )
                reads = await asyncio.gather(
                    *(
                        http.get(f"/v1/users/{user_id}/setup-status", headers=auth())
                        for user_id in users * 3
                    )
                )
            assert {read.status_code for read in reads} == {200}
            rows = await db_pool.fetch(
                "SELECT status, last_error FROM webhook_events WHERE event_id = ANY($1::text[])",
                ids,
            )
            # Still in flight: no outcome written yet, so the reads did not wait for them.
            assert {(row["status"], row["last_error"]) for row in rows} == {("pending", None)}
    finally:
        server.close()
        await db_pool.execute(
            "UPDATE webhook_events SET status = 'ignored' WHERE event_id = ANY($1::text[])", ids
        )
