"""The routing table's lookup, the claim that makes a second delivery wait, and which
rows a replay selects."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from api.webhooks.replay import ReplaySettings, replay, summary
from api.webhooks.routing import ROUTES, find_route, route_by_customer, route_checkout
from onramp.settings import ApiSettings
from tests.conftest import STRIPE_TEST_KEY, WEBHOOK_SECRETS, make_api_settings
from tests.support.api_server import serve_app
from tests.webhooks.events import create_user, event_body, event_id_of, sign, stripe_id
from tests.webhooks.receivers import SubscriptionReceiver

PATH = "/v1/webhooks/stripe"


def test_exact_types_win_and_prefixes_match_whole_segments() -> None:
    assert find_route("checkout.session.completed") is route_checkout
    assert find_route("checkout.session.created") is None
    assert find_route("invoice.payment_failed") is route_by_customer
    assert find_route("customer.subscription.trial_will_end") is route_by_customer
    assert find_route("invoiceitem.created") is None
    assert find_route("invoice_payment.paid") is None
    assert find_route("customer.updated") is None
    special = {**ROUTES, "invoice.paid": route_checkout}
    assert find_route("invoice.paid", special) is route_checkout


async def _insert(db: asyncpg.Pool, body: bytes, status: str) -> str:
    event_id = event_id_of(body)
    await db.execute(
        """
        INSERT INTO webhook_events (event_id, type, livemode, created, raw_body, status)
        VALUES ($1, 'invoice.paid', false, now(), $2, $3)
        """,
        event_id,
        body,
        status,
    )
    return event_id


async def test_a_delivery_waits_for_the_one_holding_the_row_then_answers_503(
    database_url: str, db_pool: asyncpg.Pool, task_queue: str, webhook_settings: ApiSettings
) -> None:
    customer = stripe_id("cus")
    await create_user(db_pool, customer=customer)
    body = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
    event_id = await _insert(db_pool, body, "pending")
    settings = make_api_settings(
        database_url,
        webhook_settings.temporal_address,
        task_queue,
        temporal_rpc_timeout_seconds=0.2,
    )
    async with db_pool.acquire() as holder, holder.transaction():
        # Another delivery (or a replay) is dispatching this event right now.
        await holder.execute(
            "SELECT 1 FROM webhook_events WHERE event_id = $1 FOR UPDATE", event_id
        )
        async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as http:
            response = await http.post(PATH, content=body, headers=sign(body, WEBHOOK_SECRETS[0]))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dispatch_in_progress"
    status = await db_pool.fetchval(
        "SELECT status FROM webhook_events WHERE event_id = $1", event_id
    )
    assert status == "pending"


async def test_the_replay_selects_by_status_id_and_time(
    database_url: str, db_pool: asyncpg.Pool, receivers: Client, webhook_settings: ApiSettings
) -> None:
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    failed = await _insert(
        db_pool, event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer}), "failed"
    )
    pending = await _insert(
        db_pool,
        event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer}),
        "pending",
    )
    received = await db_pool.fetchval(
        "SELECT received_at FROM webhook_events WHERE event_id = $1", failed
    )
    settings = ReplaySettings.model_validate(
        {
            "database_url": SecretStr(database_url),
            "temporal_address": webhook_settings.temporal_address,
            "temporal_task_queue": webhook_settings.temporal_task_queue,
            "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
        }
    )
    ids = [failed, pending]

    too_early = await replay(settings, ["failed"], event_ids=ids, until=received)
    assert too_early["dispatched"] == 0 and too_early["not_selected"] == 2

    only_failed = await replay(
        settings, ["failed"], event_ids=ids, since=received - timedelta(seconds=1)
    )
    assert only_failed["dispatched"] == 1 and only_failed["not_selected"] == 1
    assert "dispatched 1" in summary(only_failed)

    both = await replay(settings, ["pending", "failed"], event_ids=ids)
    assert both["dispatched"] == 1  # the failed one is final now; only the pending one left

    rows = await db_pool.fetch(
        "SELECT status, attempts FROM webhook_events WHERE event_id = ANY($1::text[])", ids
    )
    assert sorted(tuple(row) for row in rows) == [("dispatched", 1), ("dispatched", 1)]
    handle = receivers.get_workflow_handle(f"subscription-{user_id}")
    assert await handle.query(SubscriptionReceiver.applied) == [failed, pending]
