"""Provisioning interrupted by the worker.

A trigger holds the workspace insert of the test's user while the test holds an
advisory lock, so the worker is stopped (SIGTERM) or SIGKILLed exactly during
provisioning.
"""

from __future__ import annotations

import signal

import asyncpg
import pytest

from devstack.processes import ChildProcess
from tests.checkout.conftest import CheckoutStack, OpenStack, state_of
from tests.support.polling import eventually
from worker.main import EXIT_STOP_FORCED, LOCAL_STEP_MARGIN

pytestmark = pytest.mark.kill


async def _hold(gate: asyncpg.Connection, user_id: str) -> None:
    await gate.execute("SELECT pg_advisory_lock(hashtext($1))", f"onramp-test-ws-{user_id}")


async def _release(gate: asyncpg.Connection, user_id: str) -> None:
    await gate.execute("SELECT pg_advisory_unlock(hashtext($1))", f"onramp-test-ws-{user_id}")


async def _blocked_in_workspace_step(gate: asyncpg.Connection) -> None:
    """Until a worker's workspace insert waits on the test's lock (not the hand-over)."""

    async def waiting() -> int:
        found: int = await gate.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND wait_event = 'advisory' AND query ILIKE '%INSERT INTO workspaces%'"
        )
        return found

    await eventually(waiting, lambda count: count >= 1, seconds=30)


WORKSPACES = "SELECT count(*) FROM workspaces WHERE user_id = $1"
WELCOMES = "SELECT count(*) FROM email_outbox WHERE user_id = $1 AND template = 'welcome'"


async def _paid_and_blocked_in_workspace_step(
    stack: CheckoutStack, gate: asyncpg.Connection
) -> tuple[ChildProcess, str, str]:
    """A worker process, and a paid checkout whose workspace insert waits on the gate."""
    worker = stack.start_worker_process()
    user_id, address = await stack.signup()
    started = await stack.checkout(user_id)
    await _hold(gate, user_id)
    assert (await stack.pay(started["checkout_session_id"])).status_code == 200
    await stack.wait_status(
        user_id, lambda body: body["provisioning_state"] == "running", seconds=60
    )
    await _blocked_in_workspace_step(gate)
    return worker, user_id, address


async def _finished_once_by_a_new_worker(stack: CheckoutStack, user_id: str, address: str) -> None:
    stack.start_worker_process()
    final = await stack.wait_status(
        user_id, lambda body: body["next_action"] == "set_password", seconds=90
    )
    assert state_of(final) == ("paid", "completed", "sent", "set_password")
    assert await stack.count(WORKSPACES, user_id) == 1
    assert await stack.count(WELCOMES, user_id) == 1
    assert len(stack.mail.to(address)) == 1


async def test_status_answers_with_the_worker_stopped(
    checkout_stack: OpenStack, workspace_gate: asyncpg.Connection
) -> None:
    """SIGTERM while the workspace step waits on a lock. A graceful stop cannot finish a
    local step that is stuck, so the stop is bounded: the worker exits on its own after
    the grace period and the margin, saying why. With no worker at all the status is
    answered from Postgres; a new worker finishes the run, exactly once."""
    async with checkout_stack(worker=False) as stack:
        first, user_id, address = await _paid_and_blocked_in_workspace_step(stack, workspace_gate)
        first.signal(signal.SIGTERM)
        bound = 1 + LOCAL_STEP_MARGIN.total_seconds()  # WORKER_GRACEFUL_SHUTDOWN_SECONDS=1

        async def exit_code() -> int | None:
            return first.exit_code()

        code = await eventually(exit_code, lambda code: code is not None, seconds=bound + 15)
        assert code == EXIT_STOP_FORCED
        assert first.log_file is not None
        assert "WORKER_STOP_FORCED" in first.log_file.read_text()
        await _release(workspace_gate, user_id)

        # No worker at all: the status is answered from Postgres.
        status = await stack.status(user_id)
        assert state_of(status) == ("paid", "running", "not_sent", "wait_provisioning")
        assert status["paid_at"] is not None

        await _finished_once_by_a_new_worker(stack, user_id, address)


async def test_worker_killed_during_provisioning(
    checkout_stack: OpenStack, workspace_gate: asyncpg.Connection
) -> None:
    async with checkout_stack(worker=False) as stack:
        first, user_id, address = await _paid_and_blocked_in_workspace_step(stack, workspace_gate)
        first.kill()  # SIGKILL while the workspace insert is held
        await _release(workspace_gate, user_id)
        await _finished_once_by_a_new_worker(stack, user_id, address)
