"""POST /v1/webhooks/stripe against a running API: verify, store, answer, then the
API's inbox dispatcher routes and dispatches."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from devstack.stripe_events import (
    create_user,
    event_body,
    event_id_of,
    sign,
    stripe_id,
    subscription_object,
)
from devstack.stripe_receivers import CheckoutReceiver, OnboardingReceiver, SubscriptionReceiver
from onramp.settings import ApiSettings
from tests.conftest import WEBHOOK_SECRETS, make_api_settings
from tests.support.api_server import serve_app
from tests.support.polling import eventually
from tests.webhooks.conftest import LogLines
from workflows.contracts.common import UserRef

# Each test delivers a signed event through the inbox to a real workflow (~0.4 s each).
pytestmark = pytest.mark.slow

PATH = "/v1/webhooks/stripe"
SECRET, CONNECT_SECRET = WEBHOOK_SECRETS


async def _row(db: asyncpg.Pool, event_id: str) -> asyncpg.Record | None:
    return await db.fetchrow("SELECT * FROM webhook_events WHERE event_id = $1", event_id)


async def _applied(client: Client, workflow_id: str) -> list[str]:
    return await client.get_workflow_handle(workflow_id).query(SubscriptionReceiver.applied)


async def _signals(client: Client, workflow_id: str) -> int:
    return await client.get_workflow_handle(workflow_id).query(
        SubscriptionReceiver.signals_received
    )


async def _settled(db: asyncpg.Pool, event_id: str, seconds: float = 20) -> asyncpg.Record:
    """The row once the dispatcher has done with it (no longer `pending`)."""
    row = await eventually(
        lambda: _row(db, event_id),
        lambda found: found is not None and found["status"] != "pending",
        seconds=seconds,
    )
    assert row is not None
    return row


def _assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


# --- verification ---------------------------------------------------------------------


async def test_a_valid_event_is_stored_and_reaches_its_workflow(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    body = event_body("customer.subscription.updated", subscription_object(customer))
    event_id = event_id_of(body)

    response = await http.post(PATH, content=body, headers=sign(body, SECRET))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": True,
        "event_id": event_id,
        "status": "pending",
        "duplicate": False,
    }
    row = await _settled(db_pool, event_id)
    assert bytes(row["raw_body"]) == body
    assert row["type"] == "customer.subscription.updated"
    assert row["livemode"] is False
    assert row["status"] == "dispatched" and row["attempts"] == 1
    assert str(row["user_id"]) == user_id
    assert row["target_workflow_id"] == f"subscription-{user_id}"
    assert row["dispatched_at"] is not None
    applied = await eventually(
        lambda: _applied(receivers, f"subscription-{user_id}"), lambda ids: bool(ids), seconds=15
    )
    assert applied == [event_id]


@pytest.mark.parametrize("case", ["wrong_secret", "stale", "missing", "tampered", "garbage"])
async def test_a_bad_signature_is_400_and_nothing_is_stored(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, webhook_logs: LogLines, case: str
) -> None:
    body = event_body("customer.created", {"id": stripe_id("cus"), "object": "customer"})
    headers = sign(body, SECRET)
    sent = body
    if case == "wrong_secret":
        headers = sign(body, "whsec_not_one_of_ours")
    elif case == "stale":
        headers = sign(body, SECRET, timestamp=int(time.time()) - 301)
    elif case == "missing":
        del headers["Stripe-Signature"]
    elif case == "tampered":
        sent = body.replace(b'"livemode": false', b'"livemode": true')
        assert sent != body
    else:
        headers["Stripe-Signature"] = "nonsense"

    response = await http.post(PATH, content=sent, headers=headers)

    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_signature", "message": "Invalid webhook signature"}
    }
    assert await _row(db_pool, event_id_of(body)) is None
    rejected = webhook_logs.events("WEBHOOK_REJECTED")
    assert rejected and rejected[-1]["reason"] == "invalid_signature"
    expected_problem = {
        "wrong_secret": "no_match",
        "stale": "stale_timestamp",
        "missing": "missing_header",
        "tampered": "no_match",
        "garbage": "malformed_header",
    }[case]
    assert rejected[-1]["problem"] == expected_problem


async def test_the_second_secret_is_accepted(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    body = event_body("customer.created", {"id": stripe_id("cus"), "object": "customer"})
    response = await http.post(PATH, content=body, headers=sign(body, CONNECT_SECRET))
    assert response.status_code == 200, response.text
    assert await _row(db_pool, event_id_of(body)) is not None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"id": "evt_1", "type": ', "not valid JSON"),
        (b'{"id": "evt_\xff\xfe"}', "not UTF-8"),
        (b"[1, 2, 3]", "not a Stripe event"),
        (b'{"id": "evt_x1", "type": "customer.created", "created": 1, "livemode": false}', "data"),
        (
            b'{"id": "nope", "type": "x.y", "created": 1, "livemode": false, '
            b'"data": {"object": {}}}',
            "id",
        ),
    ],
)
async def test_a_body_that_is_not_an_event_is_400(
    http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    # Signed over the same text the server will check (bytes that are not UTF-8 are
    # signed as their replacement-character decoding; the server refuses them first).
    headers = sign(body.decode(errors="replace").encode(), SECRET)
    response = await http.post(PATH, content=body, headers=headers)
    _assert_error(response, 400, "invalid_payload")
    assert message in response.json()["error"]["message"]


async def test_a_body_over_1_mib_is_413_whatever_the_length_header_says(
    http: httpx.AsyncClient, webhook_settings: ApiSettings
) -> None:
    big = b"x" * (2 * 1024 * 1024)
    headers = sign(b"{}", SECRET)

    declared = await http.post(PATH, content=big, headers=headers)
    _assert_error(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = await http.post(PATH, content=chunks(), headers=headers)
    _assert_error(chunked, 413, "payload_too_large")
    assert "content-length" not in chunked.request.headers

    # A Content-Length that lies (small) while 2 MiB arrive: HTTP servers stop at the
    # declared length, so this is driven at the ASGI level, where the app sees both.
    app = create_app(webhook_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onramp.test") as asgi:
            lying = await asgi.post(
                PATH, content=chunks(), headers={**headers, "Content-Length": "100"}
            )
    _assert_error(lying, 413, "payload_too_large")


# --- what becomes of a verified event ------------------------------------------------


async def test_an_unhandled_type_is_ignored(http: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    body = event_body("payout.created", {"id": stripe_id("po"), "object": "payout"})
    response = await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert response.status_code == 200
    row = await _settled(db_pool, event_id_of(body))
    assert row["status"] == "ignored"
    assert row["status_reason"] == "event type payout.created is not handled"


async def test_an_unknown_customer_is_orphaned(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    customer = stripe_id("cus")
    body = event_body(
        "invoice.paid", {"id": stripe_id("in"), "object": "invoice", "customer": customer}
    )
    response = await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert response.status_code == 200
    row = await _settled(db_pool, event_id_of(body))
    assert row["status"] == "orphaned"
    assert row["status_reason"] == f"unknown Stripe customer {customer}"
    assert row["user_id"] is None and row["target_workflow_id"] is None


async def test_an_event_without_a_customer_is_orphaned_not_matched_to_null(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    await create_user(db_pool)  # a user whose stripe_customer_id is NULL
    body = event_body(
        "invoice.created", {"id": stripe_id("in"), "object": "invoice", "customer": None}
    )
    response = await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert response.status_code == 200
    row = await _settled(db_pool, event_id_of(body))
    assert row["status"] == "orphaned" and row["user_id"] is None


@pytest.mark.slow
async def test_an_event_for_a_checkout_that_ended_is_orphaned(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client, task_queue: str
) -> None:
    user_id = await create_user(db_pool, customer=stripe_id("cus"))
    workflow_id = f"checkout-{user_id}"
    handle = await receivers.start_workflow(
        CheckoutReceiver.run, UserRef(user_id=user_id), id=workflow_id, task_queue=task_queue
    )
    session = {
        "id": stripe_id("cs"),
        "object": "checkout.session",
        "client_reference_id": user_id,
        "metadata": {"user_id": user_id},
    }
    completed = event_body("checkout.session.completed", session)
    response = await http.post(PATH, content=completed, headers=sign(completed, SECRET))
    assert response.status_code == 200
    assert (await _settled(db_pool, event_id_of(completed)))["status"] == "dispatched"
    assert await handle.query(CheckoutReceiver.applied) == [event_id_of(completed)]

    await handle.signal(CheckoutReceiver.finish)
    assert await handle.result() == [event_id_of(completed)]

    late = event_body("checkout.session.expired", session)
    response = await http.post(PATH, content=late, headers=sign(late, SECRET))
    assert response.status_code == 200
    row = await _settled(db_pool, event_id_of(late))
    assert row["status"] == "orphaned"
    assert row["status_reason"] == f"workflow {workflow_id} is not running"
    assert row["target_workflow_id"] == workflow_id and str(row["user_id"]) == user_id
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


@pytest.mark.slow
async def test_a_checkout_event_without_a_known_user_is_orphaned(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    for metadata in ({}, {"user_id": "00000000-0000-4000-8000-000000000000"}):
        body = event_body(
            "checkout.session.completed",
            {"id": stripe_id("cs"), "object": "checkout.session", "metadata": metadata},
        )
        response = await http.post(PATH, content=body, headers=sign(body, SECRET))
        assert response.status_code == 200
        assert (await _settled(db_pool, event_id_of(body)))["status"] == "orphaned"


@pytest.mark.slow
async def test_account_updated_reaches_onboarding_by_signal_with_start(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    account = stripe_id("acct")
    saved = await create_user(db_pool, account=account)
    body = event_body("account.updated", {"id": account, "object": "account"}, account=account)
    await http.post(PATH, content=body, headers=sign(body, CONNECT_SECRET))
    assert (await _settled(db_pool, event_id_of(body)))["status"] == "dispatched"
    handle = receivers.get_workflow_handle(f"onboarding-{saved}")
    assert await handle.query(OnboardingReceiver.applied) == [event_id_of(body)]

    # Before the ensure step saves the account id, the account's metadata names the user.
    unsaved_account = stripe_id("acct")
    fresh = await create_user(db_pool)
    body = event_body(
        "account.updated",
        {"id": unsaved_account, "object": "account", "metadata": {"user_id": fresh}},
    )
    await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert (await _settled(db_pool, event_id_of(body)))["status"] == "dispatched"
    handle = receivers.get_workflow_handle(f"onboarding-{fresh}")
    assert await handle.query(OnboardingReceiver.applied) == [event_id_of(body)]

    # …but never for a user whose saved account is another one.
    body = event_body(
        "account.updated",
        {"id": stripe_id("acct"), "object": "account", "metadata": {"user_id": saved}},
    )
    await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert (await _settled(db_pool, event_id_of(body)))["status"] == "orphaned"


async def test_a_live_event_at_a_test_mode_service_is_ignored_loudly(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client, webhook_logs: LogLines
) -> None:
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    body = event_body("customer.subscription.created", subscription_object(customer), livemode=True)
    event_id = event_id_of(body)

    response = await http.post(PATH, content=body, headers=sign(body, SECRET))

    assert response.status_code == 200
    row = await _settled(db_pool, event_id)
    assert row["status"] == "ignored"
    assert row["status_reason"] == "livemode mismatch: a live event at a test-mode service"
    assert row["target_workflow_id"] is None
    with pytest.raises(RPCError) as missing:
        await receivers.get_workflow_handle(f"subscription-{user_id}").describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    (rejected,) = [e for e in webhook_logs.events("WEBHOOK_REJECTED") if e["event_id"] == event_id]
    assert rejected["level"] == "ERROR"
    assert rejected["livemode"] is True and rejected["type"] == "customer.subscription.created"
    assert "livemode mismatch" in str(rejected["reason"])
    metrics = (await http.get("/metrics")).text
    assert 'onramp_webhook_rejections_total{reason="livemode_mismatch"}' in metrics


# --- duplicates ----------------------------------------------------------------------


@pytest.mark.slow
async def test_the_same_event_five_times_has_one_row_and_one_effect(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    workflow_id = f"subscription-{user_id}"
    sequential = event_body(
        "invoice.payment_succeeded", {"id": stripe_id("in"), "customer": customer}
    )
    concurrent = event_body("invoice.finalized", {"id": stripe_id("in"), "customer": customer})

    answers = [
        (await http.post(PATH, content=sequential, headers=sign(sequential, SECRET))).json()
        for _ in range(5)
    ]
    answers += [
        response.json()
        for response in await asyncio.gather(
            *(
                http.post(PATH, content=concurrent, headers=sign(concurrent, SECRET))
                for _ in range(5)
            )
        )
    ]

    assert all(answer["received"] for answer in answers), answers
    assert [answer["duplicate"] for answer in answers[:5]] == [False, True, True, True, True]
    assert sorted(answer["duplicate"] for answer in answers[5:]) == [False, True, True, True, True]
    for body in (sequential, concurrent):
        await _settled(db_pool, event_id_of(body))
        rows = await db_pool.fetch(
            "SELECT status, attempts FROM webhook_events WHERE event_id = $1", event_id_of(body)
        )
        assert [tuple(row) for row in rows] == [("dispatched", 1)]
    applied = await eventually(
        lambda: _applied(receivers, workflow_id), lambda ids: len(ids) == 2, seconds=15
    )
    assert sorted(applied) == sorted([event_id_of(sequential), event_id_of(concurrent)])
    assert await _signals(receivers, workflow_id) == 2  # not just deduplicated: sent once


@pytest.mark.slow
async def test_a_stored_pending_event_is_dispatched_without_a_redelivery(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    """A row left `pending` (Temporal was down) is picked up by the dispatcher's poll."""
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    body = event_body("customer.subscription.deleted", subscription_object(customer))
    await db_pool.execute(
        """
        INSERT INTO webhook_events (event_id, type, livemode, created, raw_body, attempts,
                                    last_error)
        VALUES ($1, 'customer.subscription.deleted', false, now(), $2, 1, 'UNAVAILABLE')
        """,
        event_id_of(body),
        body,
    )
    row = await _settled(db_pool, event_id_of(body))
    assert row["status"] == "dispatched" and row["attempts"] == 2
    applied = await eventually(
        lambda: _applied(receivers, f"subscription-{user_id}"), bool, seconds=15
    )
    assert applied == [event_id_of(body)]
    # Stripe's redelivery of it now: 200, the row's status, no second signal.
    response = await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert response.json()["duplicate"] is True and response.json()["status"] == "dispatched"
    assert await _signals(receivers, f"subscription-{user_id}") == 1


# --- Temporal unreachable, logs, metrics, OpenAPI -------------------------------------


async def test_temporal_unreachable_is_200_and_the_dispatcher_keeps_the_event_pending(
    database_url: str, db_pool: asyncpg.Pool, task_queue: str, webhook_logs: LogLines
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings = make_api_settings(
        database_url, f"127.0.0.1:{closed}", task_queue, temporal_rpc_timeout_seconds=1.0
    )
    customer = stripe_id("cus")
    await create_user(db_pool, customer=customer)
    body = event_body("invoice.paid", {"id": stripe_id("in"), "customer": customer})
    event_id = event_id_of(body)
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(PATH, content=body, headers=sign(body, SECRET), timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pending"
        # The dispatcher tried, failed, and left it pending for its next try.
        row = await eventually(
            lambda: _row(db_pool, event_id),
            lambda found: found is not None and found["last_error"] is not None,
            seconds=20,
        )
    assert row is not None and row["status"] == "pending" and row["attempts"] >= 1
    assert row["next_attempt_at"] > row["received_at"] and row["lease_id"] is None
    logged = webhook_logs.events("WEBHOOK_PROCESSING_FAILED")
    failed = [entry for entry in logged if entry["event_id"] == event_id]
    assert failed and failed[0]["outcome"] == "unavailable" and failed[0]["via"] == "dispatcher"
    # Nothing else should send it to this test's queue-less Temporal later.
    await db_pool.execute(
        "UPDATE webhook_events SET status = 'ignored' WHERE event_id = $1", event_id
    )


async def test_logs_name_the_event_and_never_carry_a_secret_or_the_body(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client, webhook_logs: LogLines
) -> None:
    customer = stripe_id("cus")
    user_id = await create_user(db_pool, customer=customer)
    marker = "card-fingerprint-should-never-be-logged"
    obj = {**subscription_object(customer), "description": marker}
    body = event_body("customer.subscription.updated", obj)
    event_id = event_id_of(body)
    await http.post(PATH, content=body, headers=sign(body, SECRET))
    await _settled(db_pool, event_id)

    (received,) = [e for e in webhook_logs.events("WEBHOOK_RECEIVED") if e["event_id"] == event_id]
    assert received["type"] == "customer.subscription.updated" and received["livemode"] is False
    (done,) = [e for e in webhook_logs.events("WEBHOOK_PROCESSED_OK") if e["event_id"] == event_id]
    assert done["user_id"] == user_id and done["status"] == "dispatched"
    assert done["workflow_id"] == f"subscription-{user_id}"
    everything = "\n".join(webhook_logs.lines)
    assert marker not in everything
    assert all(secret not in everything for secret in WEBHOOK_SECRETS)
    assert "v1=" not in everything


async def test_metrics_count_outcomes_and_signature_failures(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool, receivers: Client
) -> None:
    customer = stripe_id("cus")
    await create_user(db_pool, customer=customer)
    body = event_body("invoice.finalized", {"id": stripe_id("in"), "customer": customer})
    await http.post(PATH, content=body, headers=sign(body, SECRET))
    await _settled(db_pool, event_id_of(body))
    await http.post(PATH, content=body, headers=sign(body, "whsec_wrong"))
    text = (await http.get("/metrics")).text
    assert 'onramp_webhook_events_total{outcome="dispatched",type="invoice.finalized"}' in text
    assert 'onramp_webhook_signature_failures_total{problem="no_match"}' in text
    assert 'onramp_webhook_dispatch_seconds_count{method="signal_with_start",result="ok"}' in text


async def test_openapi_documents_the_webhook_answers(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    operation = schema["paths"][PATH]["post"]
    assert "security" not in operation
    responses = operation["responses"]
    assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookAck")
    for status in ("400", "413", "503"):  # 503: Postgres could not store it
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")
    assert operation["requestBody"]["required"] is True
    assert any(p["name"] == "Stripe-Signature" for p in operation["parameters"])


async def test_the_stored_body_is_the_exact_bytes_stripe_signed(
    http: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    body = json.dumps(
        {
            "id": f"evt_test_{time.time_ns()}",
            "object": "event",
            "type": "customer.created",
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": {"id": stripe_id("cus"), "name": "Zoë  \u00e9"}},
        },
        ensure_ascii=False,
        indent=2,
    ).encode()
    response = await http.post(PATH, content=body, headers=sign(body, SECRET))
    assert response.status_code == 200
    row = await _row(db_pool, event_id_of(body))
    assert row is not None and bytes(row["raw_body"]) == body
