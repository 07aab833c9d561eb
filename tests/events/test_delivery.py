"""Durable delivery of outbound events to an endpoint, end to end (real Temporal)."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import asyncpg
import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tests.events.conftest import ADMIN, Delivery
from tests.support.harness import make_api_settings, open_app_client, temporal_address
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.event_delivery import (
    event_delivery_workflow_id,
    event_dispatch_workflow_id,
)

pytestmark = pytest.mark.slow


async def _received(delivery: Delivery, count: int, seconds: float = 30.0) -> None:
    async def probe() -> int:
        return len(delivery.receiver.received)

    await eventually(probe, lambda n: n >= count, seconds=seconds, interval=0.1)


async def _open_lanes(delivery: Delivery, endpoint_id: str) -> int:
    return int(
        await delivery.pool.fetchval(
            "SELECT count(*) FROM event_lanes WHERE endpoint_id = $1", endpoint_id
        )
    )


async def test_in_order_per_user_and_exactly_once_when_healthy(delivery: Delivery) -> None:
    endpoint = await delivery.create_endpoint()
    assert endpoint["secret"].startswith("whsec_")
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    sent: dict[str, list[str]] = {alice: [], bob: []}
    for step in range(5):
        for user in (alice, bob):
            sent[user].append(await delivery.emit(user, "user.created", step=step))

    await _received(delivery, 10)
    await asyncio.sleep(1.0)  # anything extra would have arrived by now

    assert delivery.receiver.ids(alice) == sent[alice]
    assert delivery.receiver.ids(bob) == sent[bob]
    ids = delivery.receiver.ids()
    assert len(ids) == len(set(ids)) == 10
    first = delivery.receiver.received[0].event
    assert set(first) == {"id", "type", "version", "timestamp", "data"}
    assert first["id"] == delivery.receiver.received[0].webhook_id
    rows = await delivery.deliveries(endpoint["id"])
    assert sorted(row["event_id"] for row in rows) == sorted(ids)
    assert {row["status"] for row in rows} == {"delivered"}
    assert all(row["response_code"] == 204 and row["attempt"] == 1 for row in rows)
    # Healthy, the dispatcher delivers itself: no user got a retry lane.
    for user in (alice, bob):
        lane = delivery.temporal.get_workflow_handle(
            event_delivery_workflow_id(endpoint["id"], user)
        )
        with pytest.raises(RPCError) as missing:
            await lane.describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND
    dispatcher = event_dispatch_workflow_id(endpoint["id"])
    status = await delivery.temporal.get_workflow_handle(dispatcher).query("status")
    assert status["open_lanes"] == 0
    await record_history(delivery.temporal, dispatcher, "event_dispatch_polling")


async def test_only_subscribed_types_are_delivered(delivery: Delivery) -> None:
    await delivery.create_endpoint(["checkout.paid"])
    user = str(uuid.uuid4())
    await delivery.emit(user, "user.created")
    paid = await delivery.emit(user, "checkout.paid")
    await _received(delivery, 1)
    await asyncio.sleep(1.0)
    assert delivery.receiver.ids() == [paid]


async def test_receiver_down_then_back_gets_everything_in_order(delivery: Delivery) -> None:
    endpoint = await delivery.create_endpoint()
    receiver = delivery.receiver
    receiver.fail_next = 4
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    sent = {alice: [await delivery.emit(alice, step=0)], bob: [await delivery.emit(bob, step=0)]}

    async def failures() -> int:
        return receiver.requests

    await eventually(failures, lambda n: n >= 4, seconds=20)
    await receiver.stop()  # now connections are refused
    for step in (1, 2):
        for user in (alice, bob):
            sent[user].append(await delivery.emit(user, step=step))

    async def refused() -> list[dict[str, object]]:
        return await delivery.deliveries(endpoint["id"], status="failed")

    rows = await eventually(
        refused, lambda rows: any(row["response_code"] is None for row in rows), seconds=20
    )
    assert all(row["next_attempt_at"] is not None for row in rows)

    async def endpoint_status() -> str:
        answer = await delivery.api.get(
            f"/v1/admin/event-endpoints/{endpoint['id']}", headers=ADMIN
        )
        return str(answer.json()["status"])

    await eventually(endpoint_status, lambda status: status == "failing", seconds=20)
    await receiver.start()

    await _received(delivery, 6)
    await eventually(endpoint_status, lambda status: status == "active", seconds=10)
    assert receiver.ids(alice) == sent[alice]
    assert receiver.ids(bob) == sent[bob]
    attempts = await delivery.deliveries(endpoint["id"])
    codes = {row["response_code"] for row in attempts if row["status"] == "failed"}
    assert 500 in codes and None in codes
    for event_id in sent[alice][:1] + sent[bob][:1]:
        tries = [row for row in attempts if row["event_id"] == event_id]
        assert max(row["attempt"] for row in tries) >= 2
        assert [row["status"] for row in tries if row["status"] == "delivered"] == ["delivered"]
    lane = delivery.temporal.get_workflow_handle(event_delivery_workflow_id(endpoint["id"], alice))
    await lane.result()
    await record_history(delivery.temporal, lane.id, "event_delivery_retried")
    lane_run = (await lane.describe()).run_id

    # Drained, the lanes are closed: the users' next events go out directly again.
    await eventually(lambda: _open_lanes(delivery, endpoint["id"]), lambda n: n == 0)
    sent[alice].append(await delivery.emit(alice, step=3))
    await _received(delivery, 7)
    assert receiver.ids(alice) == sent[alice]
    assert (await lane.describe()).run_id == lane_run  # no lane started again


async def test_a_slow_receiver_for_one_user_never_delays_another(delivery: Delivery) -> None:
    await delivery.create_endpoint()
    slow, quick = str(uuid.uuid4()), str(uuid.uuid4())
    # Beyond the attempt timeout: the slow user's event times out and is retried.
    delivery.receiver.slow_users[slow] = 3.0
    held = await delivery.emit(slow, step=0)
    quick_ids = [await delivery.emit(quick, step=step) for step in range(3)]

    await _received(delivery, 3, seconds=10)
    assert delivery.receiver.ids(quick) == quick_ids
    assert delivery.receiver.ids(slow) == []

    delivery.receiver.slow_users.clear()

    async def slow_ones() -> list[str]:
        return delivery.receiver.ids(slow)

    # Late answers to timed-out attempts arrive too: duplicates of one webhook-id only.
    got = await eventually(slow_ones, bool, seconds=20)
    assert set(got) == {held}


async def test_pause_resume_and_replay(delivery: Delivery) -> None:
    endpoint = await delivery.create_endpoint()
    path = f"/v1/admin/event-endpoints/{endpoint['id']}"
    user = str(uuid.uuid4())
    first = await delivery.emit(user, step=0)
    await _received(delivery, 1)

    paused = await delivery.api.post(f"{path}/pause", headers=ADMIN)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    held = [await delivery.emit(user, step=step) for step in (1, 2)]
    await asyncio.sleep(2.0)
    assert delivery.receiver.ids() == [first]

    resumed = await delivery.api.post(f"{path}/resume", headers=ADMIN)
    assert resumed.json()["status"] == "active"
    await _received(delivery, 3)
    assert delivery.receiver.ids() == [first, *held]

    one = await delivery.api.post(f"{path}/replay", json={"event_id": first}, headers=ADMIN)
    assert one.status_code == 202, one.text
    await _received(delivery, 4)
    assert delivery.receiver.ids()[3] == first

    ranged = await delivery.api.post(
        f"{path}/replay", json={"from_event_id": first, "to_event_id": held[-1]}, headers=ADMIN
    )
    assert ranged.status_code == 202
    await _received(delivery, 7)
    assert delivery.receiver.ids()[4:] == [first, *held]
    replays = [row for row in await delivery.deliveries(endpoint["id"]) if row["replay"]]
    assert len(replays) == 4


async def test_rotation_signs_with_both_secrets_for_a_day(delivery: Delivery) -> None:
    endpoint = await delivery.create_endpoint()
    path = f"/v1/admin/event-endpoints/{endpoint['id']}"
    rotated = await delivery.api.post(f"{path}/rotate-secret", headers=ADMIN)
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"] != endpoint["secret"]
    assert body["previous_secret_expires_at"] is not None
    delivery.receiver.secrets = [endpoint["secret"], body["secret"]]
    await delivery.emit(str(uuid.uuid4()))
    await _received(delivery, 1)
    item = delivery.receiver.received[0]
    assert item.verified_by == [0, 1]
    assert len(item.signatures.split(" ")) == 2
    shown = (await delivery.api.get(path, headers=ADMIN)).json()
    assert "secret" not in shown


async def test_the_secret_is_never_in_history_postgres_or_logs(
    delivery: Delivery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    endpoint = await delivery.create_endpoint()
    user = str(uuid.uuid4())
    delivery.receiver.fail_next = 1  # so the user gets a lane, whose history is read too
    await delivery.emit(user)
    await _received(delivery, 1)
    secret = endpoint["secret"]
    raw = secret.removeprefix("whsec_")
    for workflow_id in (
        event_dispatch_workflow_id(endpoint["id"]),
        event_delivery_workflow_id(endpoint["id"], user),
    ):
        history = await delivery.temporal.get_workflow_handle(workflow_id).fetch_history()
        text = json.dumps(history.to_json_dict())
        assert raw not in text and raw[:20] not in text
    assert raw not in caplog.text
    row = await delivery.pool.fetchrow(
        "SELECT * FROM event_endpoints WHERE id = $1", endpoint["id"]
    )
    assert row is not None
    assert all(
        raw.encode() not in bytes(value) for value in row.values() if isinstance(value, bytes)
    )
    assert all(raw not in str(value) for value in row.values())


async def test_admin_api_validates_and_needs_the_admin_key(delivery: Delivery) -> None:
    bad = await delivery.api.post(
        "/v1/admin/event-endpoints",
        json={"url": "ftp://example.com", "event_types": ["*"]},
        headers=ADMIN,
    )
    assert bad.status_code == 422
    none = await delivery.api.post(
        "/v1/admin/event-endpoints",
        json={"url": "https://example.com", "event_types": []},
        headers=ADMIN,
    )
    assert none.status_code == 422
    anonymous = await delivery.api.get("/v1/admin/event-endpoints")
    assert anonymous.status_code == 401
    missing = await delivery.api.get(
        f"/v1/admin/event-endpoints/ep_{uuid.uuid4().hex}", headers=ADMIN
    )
    assert missing.status_code == 404


async def test_a_late_commit_keeps_its_place_and_a_rollback_is_skipped(
    delivery: Delivery, database_url: str
) -> None:
    await delivery.create_endpoint()
    user = str(uuid.uuid4())
    connection = await asyncpg.connect(database_url)
    try:
        # Sequence numbers are taken at insert, visible at commit: the earlier one
        # commits after the later one, and the receiver still gets them in order.
        transaction = connection.transaction()
        await transaction.start()
        early = f"evt_{uuid.uuid4().hex}"
        await connection.execute(
            "INSERT INTO outbound_events (id, type, version, user_id, data) "
            "VALUES ($1, 'user.created', 1, $2::uuid, jsonb_build_object('user_id', $2::text))",
            early,
            user,
        )
        late = await delivery.emit(user, "user.active")
        await asyncio.sleep(0.6)
        assert delivery.receiver.ids() == []
        await transaction.commit()
        await _received(delivery, 2)
        assert delivery.receiver.ids() == [early, late]

        # A rolled-back insert leaves a hole for good: skipped after the grace period.
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute(
            "INSERT INTO outbound_events (id, type, version, user_id, data) "
            "VALUES ($1, 'user.created', 1, $2, '{}'::jsonb)",
            f"evt_{uuid.uuid4().hex}",
            user,
        )
        after = await delivery.emit(user, "checkout.paid")
        await transaction.rollback()
        await _received(delivery, 3)
        assert delivery.receiver.ids() == [early, late, after]

        # A commit later than the grace period: read past as a rollback, then found and
        # delivered after the user's later events, never lost.
        transaction = connection.transaction()
        await transaction.start()
        slow = f"evt_{uuid.uuid4().hex}"
        await connection.execute(
            "INSERT INTO outbound_events (id, type, version, user_id, data) "
            "VALUES ($1, 'password.set', 1, $2::uuid, jsonb_build_object('user_id', $2::text))",
            slow,
            user,
        )
        meanwhile = await delivery.emit(user, "provisioning.completed")
        await _received(delivery, 4)  # the hole settled: the dispatcher went on
        assert delivery.receiver.ids() == [early, late, after, meanwhile]
        await transaction.commit()
        await _received(delivery, 5)
        assert delivery.receiver.ids() == [early, late, after, meanwhile, slow]
    finally:
        await connection.close()


async def test_create_without_temporal_leaves_no_endpoint(
    delivery: Delivery, database_url: str, task_queue: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    settings = make_api_settings(database_url, closed, task_queue, temporal_rpc_timeout_seconds=1.0)
    before = await delivery.pool.fetchval("SELECT count(*) FROM event_endpoints")
    async for api in open_app_client(create_app(settings)):
        answer = await api.post(
            "/v1/admin/event-endpoints",
            json={"url": "https://example.com/hooks", "event_types": ["*"]},
            headers=ADMIN,
        )
        assert answer.status_code == 503
        assert "whsec_" not in answer.text
    assert await delivery.pool.fetchval("SELECT count(*) FROM event_endpoints") == before


async def test_a_stopped_dispatcher_is_started_again_from_its_saved_cursor(
    delivery: Delivery, database_url: str, task_queue: str, temporal_env: WorkflowEnvironment
) -> None:
    endpoint = await delivery.create_endpoint()
    user = str(uuid.uuid4())
    first = await delivery.emit(user, "user.created")
    await _received(delivery, 1)
    dispatcher = delivery.temporal.get_workflow_handle(event_dispatch_workflow_id(endpoint["id"]))
    await dispatcher.terminate(reason="an operator's mistake")
    later = await delivery.emit(user, "user.active")
    await asyncio.sleep(1.0)
    assert delivery.receiver.ids(user) == [first]  # nothing reads the outbox now

    # Another API process's system monitor finds the endpoint without a dispatcher.
    settings = make_api_settings(
        database_url, temporal_address(temporal_env), task_queue, system_check_interval_seconds=0.2
    )
    async for _api in open_app_client(create_app(settings)):
        await _received(delivery, 2)
    assert delivery.receiver.ids(user) == [first, later]
    described = await dispatcher.describe()
    assert described.status is not None and described.status.name == "RUNNING"


async def test_delete_ends_delivery_and_forgets_the_endpoint(delivery: Delivery) -> None:
    endpoint = await delivery.create_endpoint()
    user = str(uuid.uuid4())
    await delivery.emit(user, "user.created")
    await _received(delivery, 1)
    path = f"/v1/admin/event-endpoints/{endpoint['id']}"
    deleted = await delivery.api.delete(path, headers=ADMIN)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await delivery.api.get(path, headers=ADMIN)).status_code == 404
    assert (await delivery.api.delete(path, headers=ADMIN)).status_code == 404
    await delivery.emit(user, "user.active")
    dispatcher = delivery.temporal.get_workflow_handle(event_dispatch_workflow_id(endpoint["id"]))
    async with asyncio.timeout(20):
        await dispatcher.result()  # it ends once it finds its endpoint gone
    assert len(delivery.receiver.received) == 1
    assert not await delivery.pool.fetchval(
        "SELECT count(*) FROM event_deliveries WHERE endpoint_id = $1", endpoint["id"]
    )


async def test_a_dispatcher_started_from_scratch_keeps_a_retrying_users_order(
    delivery: Delivery, database_url: str, task_queue: str, temporal_env: WorkflowEnvironment
) -> None:
    endpoint = await delivery.create_endpoint()
    user = str(uuid.uuid4())
    first = f"evt_{uuid.uuid4().hex}"
    delivery.receiver.failing_ids.add(first)  # only this one fails, for now
    await delivery.emit(user, "user.created", event_id=first)
    await eventually(lambda: _open_lanes(delivery, endpoint["id"]), lambda n: n == 1)

    async def cursor_past_first() -> bool:
        return bool(
            await delivery.pool.fetchval(
                "SELECT e.dispatch_cursor >= o.sequence FROM event_endpoints e, outbound_events o"
                " WHERE e.id = $1 AND o.id = $2",
                endpoint["id"],
                first,
            )
        )

    await eventually(cursor_past_first, bool)  # a new dispatcher will not read it again
    dispatcher = delivery.temporal.get_workflow_handle(event_dispatch_workflow_id(endpoint["id"]))
    old_run = (await dispatcher.describe()).run_id
    await dispatcher.terminate(reason="an operator's mistake")
    later = await delivery.emit(user, "user.active")

    # A new dispatcher knows nothing of the lane but what Postgres kept: the later event
    # must queue behind the one the lane still retries, not go out beside it.
    settings = make_api_settings(
        database_url, temporal_address(temporal_env), task_queue, system_check_interval_seconds=0.2
    )
    async for _api in open_app_client(create_app(settings)):

        async def started() -> bool:
            described = await dispatcher.describe()
            running = described.status is not None and described.status.name == "RUNNING"
            return running and described.run_id != old_run

        await eventually(started, bool, seconds=10)
        await asyncio.sleep(1.0)  # the new dispatcher has read and routed the later event
        assert delivery.receiver.ids(user) == []
        delivery.receiver.failing_ids.clear()
        await _received(delivery, 2)
    assert delivery.receiver.ids(user) == [first, later]
    await eventually(lambda: _open_lanes(delivery, endpoint["id"]), lambda n: n == 0)
