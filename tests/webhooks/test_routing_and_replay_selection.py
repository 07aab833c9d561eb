"""The routing table's lookup, the lease that keeps a replay off a row a dispatcher
holds, and which rows a replay selects."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from pydantic import SecretStr
from temporalio.client import Client

from api.webhooks.replay import ReplaySettings, replay, summary
from api.webhooks.routing import ROUTES, find_route, route_by_customer, route_checkout
from devstack.stripe_events import create_user, event_body, event_id_of, stripe_id
from devstack.stripe_receivers import SubscriptionReceiver
from onramp.settings import ApiSettings
from tests.conftest import STRIPE_TEST_KEY

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


async def test_a_replay_leaves_a_row_a_dispatcher_holds(
    database_url: str, db_pool: asyncpg.Pool, receivers: Client, webhook_settings: ApiSettings
) -> None:
    customer = stripe_id("cus")
    await create_user(db_pool, customer=customer)
    body = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
    event_id = await _insert(db_pool, body, "pending")
    # A dispatcher (of any API process) leased it a moment ago and is calling Temporal.
    await db_pool.execute(
        """
        UPDATE webhook_events
        SET lease_id = gen_random_uuid(), lease_until = now() + interval '1 minute'
        WHERE event_id = $1
        """,
        event_id,
    )
    counts = await replay(
        _replay_settings(database_url, webhook_settings), ["pending"], event_ids=[event_id]
    )
    assert counts["busy"] == 1 and counts["dispatched"] == 0
    row = await db_pool.fetchrow(
        "SELECT status, attempts FROM webhook_events WHERE event_id = $1", event_id
    )
    assert row is not None and tuple(row) == ("pending", 0)
    # Its lease ran out (that dispatcher died): the replay takes it.
    await db_pool.execute(
        "UPDATE webhook_events SET lease_until = now() - interval '1 second' WHERE event_id = $1",
        event_id,
    )
    counts = await replay(
        _replay_settings(database_url, webhook_settings), ["pending"], event_ids=[event_id]
    )
    assert counts["dispatched"] == 1


def _replay_settings(database_url: str, webhook_settings: ApiSettings) -> ReplaySettings:
    return ReplaySettings.model_validate(
        {
            "database_url": SecretStr(database_url),
            "temporal_address": webhook_settings.temporal_address,
            "temporal_task_queue": webhook_settings.temporal_task_queue,
            "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
            "onramp_payload_keys": webhook_settings.onramp_payload_keys,
        }
    )


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
    settings = _replay_settings(database_url, webhook_settings)
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
