"""A worker killed between "Stripe customer created" and "id saved".

A test-only trigger makes saving the customer id wait on an advisory lock that the test
holds, so the kill lands exactly in that window. Real worker processes (`python -m
worker`) are killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from devstack import supervisor
from devstack.processes import ChildProcess
from tests.support.ensure_probe import EnsureCustomerProbe
from tests.support.harness import worker_process_env
from tests.support.polling import eventually
from tests.support.stack import Stack
from workflows.contracts.signup import (
    SIGNUP_WORKFLOW,
    SignupInput,
    SignupResult,
    signup_workflow_id,
)

pytestmark = pytest.mark.kill

# The killed worker held the signup's workflow task (the save is a local step, run inside
# it): a new worker gets the task once the server times it out. Temporal's default is
# 10 s; the tests start the signup themselves and give it a shorter one (the SDK keeps a
# task open past it while a local step runs, by heartbeating the task).
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=3)


_HOLD_SAVE = """
CREATE OR REPLACE FUNCTION onramp_test_hold_customer_save() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('onramp-test-save-' || NEW.id::text));
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS onramp_test_hold_customer_save ON users;
CREATE TRIGGER onramp_test_hold_customer_save BEFORE UPDATE OF stripe_customer_id ON users
    FOR EACH ROW EXECUTE FUNCTION onramp_test_hold_customer_save();
"""


@pytest.fixture
async def save_gate(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose advisory locks hold back customer-id saves of chosen users."""
    connection = await asyncpg.connect(database_url)
    await connection.execute(_HOLD_SAVE)
    try:
        yield connection
    finally:
        await connection.execute("SELECT pg_advisory_unlock_all()")
        await connection.close()


async def _hold(gate: asyncpg.Connection, user_id: str) -> None:
    await gate.execute("SELECT pg_advisory_lock(hashtext($1))", f"onramp-test-save-{user_id}")


async def _release(gate: asyncpg.Connection, user_id: str) -> None:
    await gate.execute("SELECT pg_advisory_unlock(hashtext($1))", f"onramp-test-save-{user_id}")


# Sessions held by the gate: waiting on its lock, or on the row of a save that is (a
# BEFORE UPDATE trigger runs with the row already locked).
_HELD_BY_GATE = """
WITH waiting AS (SELECT pid, pg_blocking_pids(pid) AS behind FROM pg_stat_activity)
SELECT count(*) FROM waiting w
WHERE $1 = ANY(w.behind)
   OR EXISTS (SELECT 1 FROM waiting v WHERE v.pid = ANY(w.behind) AND $1 = ANY(v.behind))
"""


async def _saves_waiting(db_pool: asyncpg.Pool, gate: asyncpg.Connection, count: int) -> None:
    """Wait until `count` saves are held by the gate."""
    await eventually(
        lambda: db_pool.fetchval(_HELD_BY_GATE, gate.get_server_pid()),
        lambda held: held >= count,
    )


@pytest.fixture
def worker_process(database_url: str, stack: Stack) -> Iterator[Any]:
    """Start real `python -m worker` processes on a task queue; all are killed after."""
    started: list[ChildProcess] = []

    def start(task_queue: str) -> ChildProcess:
        env = worker_process_env(
            database_url,
            stack.temporal_address,
            task_queue,
            stack.sandbox.base_url,
            LOG_LEVEL="WARNING",
        )
        child = supervisor.start_worker(env)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


async def _wait_for_customer(stack: Stack, email: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = await stack.stripe.v1.customers.list_async({"email": email})
        if found.data:
            customer_id: str = found.data[0].id
            return customer_id
        await asyncio.sleep(0.2)  # the poll interval of a wait on a condition
    raise AssertionError(f"no customer was created for {email}")


async def _saved_customer(db_pool: asyncpg.Pool, user_id: str) -> str | None:
    saved: str | None = await db_pool.fetchval(
        "SELECT stripe_customer_id FROM users WHERE id = $1", uuid.UUID(user_id)
    )
    return saved


async def test_worker_killed_after_create_before_save(
    stack: Stack,
    temporal_client: Client,
    db_pool: asyncpg.Pool,
    save_gate: asyncpg.Connection,
    worker_process: Any,
) -> None:
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    user_id, email = str(uuid.uuid4()), f"crash-{uuid.uuid4().hex[:8]}@example.com"
    await _hold(save_gate, user_id)
    first_worker = worker_process(task_queue)
    handle = await temporal_client.start_workflow(
        SIGNUP_WORKFLOW,
        SignupInput(user_id=user_id, email=email, username="crash"),
        id=signup_workflow_id(user_id),
        task_queue=task_queue,
        result_type=SignupResult,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
    )
    customer_id = await _wait_for_customer(stack, email)
    await _saves_waiting(db_pool, save_gate, 1)  # the save is now waiting on the gate
    assert await _saved_customer(db_pool, user_id) is None
    first_worker.kill()
    await _release(save_gate, user_id)
    worker_process(task_queue)

    result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result.stripe_customer_id == customer_id
    assert await _saved_customer(db_pool, user_id) == customer_id
    live = await stack.stripe.v1.customers.list_async({"email": email})
    assert [customer.id for customer in live.data] == [customer_id]


async def test_two_callers_of_ensure_leave_one_customer(
    stack: Stack,
    temporal_client: Client,
    db_pool: asyncpg.Pool,
    save_gate: asyncpg.Connection,
    worker_process: Any,
) -> None:
    """Signup (worker killed mid-way) and a second workflow ensure the same customer."""
    signup_queue = f"writer-a-{uuid.uuid4().hex[:8]}"
    user_id, email = str(uuid.uuid4()), f"two-{uuid.uuid4().hex[:8]}@example.com"
    await _hold(save_gate, user_id)
    first_worker = worker_process(signup_queue)
    signup = await temporal_client.start_workflow(
        SIGNUP_WORKFLOW,
        SignupInput(user_id=user_id, email=email, username="two"),
        id=signup_workflow_id(user_id),
        task_queue=signup_queue,
        result_type=SignupResult,
        task_timeout=WORKFLOW_TASK_TIMEOUT,
    )
    customer_id = await _wait_for_customer(stack, email)
    probe = await temporal_client.start_workflow(
        EnsureCustomerProbe.run,
        user_id,
        id=f"probe-{user_id}",
        task_queue=stack.task_queue,  # served by the in-process worker of the stack
    )
    await _saves_waiting(db_pool, save_gate, 2)  # both saves are waiting on the gate
    first_worker.kill()
    await _release(save_gate, user_id)
    ensured = await asyncio.wait_for(probe.result(), timeout=60)
    worker_process(signup_queue)
    result = await asyncio.wait_for(signup.result(), timeout=90)

    assert ensured.stripe_id == customer_id == result.stripe_customer_id
    assert await _saved_customer(db_pool, user_id) == customer_id
    live = await stack.stripe.v1.customers.list_async({"email": email})
    assert [customer.id for customer in live.data] == [customer_id]


async def test_concurrent_ensure_calls_agree(
    stack: Stack, temporal_client: Client, db_pool: asyncpg.Pool
) -> None:
    user_id, email = str(uuid.uuid4()), f"pair-{uuid.uuid4().hex[:8]}@example.com"
    await db_pool.execute(
        "INSERT INTO users (id, email, username, status) VALUES ($1, $2, 'pair', 'active')",
        uuid.UUID(user_id),
        email,
    )
    handles = [
        await temporal_client.start_workflow(
            EnsureCustomerProbe.run, user_id, id=f"probe-{n}-{user_id}", task_queue=stack.task_queue
        )
        for n in range(2)
    ]
    results = await asyncio.gather(*(handle.result() for handle in handles))
    saved = await _saved_customer(db_pool, user_id)
    assert {result.stripe_id for result in results} == {saved}
    live = await stack.stripe.v1.customers.list_async({"email": email})
    assert [customer.id for customer in live.data] == [saved]
