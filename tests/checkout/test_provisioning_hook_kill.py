"""The provisioning hook's platform worker SIGKILLed mid-activity: the attempt is retried
on the restarted worker once the heartbeat timeout has passed, under the same
idempotency key, and the platform ends with one tenant."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.checkout.conftest import OpenStack, state_of
from tests.checkout.test_provisioning_hook import (
    open_platform_pool,
    temporal_address_of,
    tenants_of,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.kill

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def platform_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with open_platform_pool(database_url) as pool:
        yield pool


@contextlib.contextmanager
def _platform_process(
    address: str, task_queue: str, dsn: str, *, hold: bool
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "tests.checkout.test_provisioning_hook",
        address,
        task_queue,
        dsn,
    ]
    if hold:
        command.append("--hold-first-attempt")
    child = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy())
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)


@pytest.mark.slow
async def test_a_platform_worker_killed_mid_activity_ends_with_one_tenant(
    checkout_stack: OpenStack, platform_pool: asyncpg.Pool, database_url: str
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        address = temporal_address_of(stack)
        user_id, _ = await stack.signup()
        with _platform_process(address, hook_queue, database_url, hold=True) as first:
            started = await stack.checkout(user_id)
            assert (await stack.pay(started["checkout_session_id"])).status_code == 200
            # The first attempt made the tenant and is still running (heartbeating).
            await eventually(
                lambda: tenants_of(platform_pool, user_id), lambda rows: len(rows) == 1, seconds=60
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        running = await stack.status(user_id)
        assert running["provisioning_state"] == "running", running
        # A new worker: the attempt is retried once the heartbeat timeout has passed.
        with _platform_process(address, hook_queue, database_url, hold=True):
            final = await stack.wait_status(
                user_id, lambda body: body["next_action"] == "set_password", seconds=90
            )
        (tenant,) = await tenants_of(platform_pool, user_id)
        assert tenant["calls"] == 2  # the same key twice: one tenant
        assert final["tenant_id"] == tenant["tenant_id"]
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
