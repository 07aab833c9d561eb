"""The provisioning hook's platform worker SIGKILLed mid-activity: the attempt is retried
on the restarted worker once the heartbeat timeout has passed, under the same
idempotency key, and the platform ends with one tenant.

The worker is the example platform's, run as a platform runs it:
`python -m examples.platform worker`, configured by its environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.platform.store import Store
from tests.checkout.conftest import OpenStack, state_of
from tests.checkout.test_provisioning_hook import (
    PLATFORM_URL,
    temporal_address_of,
    tenants_of,
)
from tests.support.harness import PAYLOAD_KEYS
from tests.support.polling import eventually

pytestmark = pytest.mark.kill

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def platform_store(tmp_path: Path) -> Store:
    """The platform's SQLite file, shared by its worker processes and this test."""
    return Store(tmp_path / "platform.db")


@contextlib.contextmanager
def _platform_process(
    address: str, task_queue: str, store: Store, *, setup_seconds: float
) -> Iterator[subprocess.Popen[bytes]]:
    """The example platform's worker; making a tenant's database takes `setup_seconds`
    (heartbeating meanwhile), long enough to be killed in the middle of it."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": address,
        "PLATFORM_TASK_QUEUE": task_queue,
        "PLATFORM_DB": str(store.path),
        "PLATFORM_PUBLIC_URL": PLATFORM_URL,
        "PLATFORM_SETUP_SECONDS": str(setup_seconds),
        # The platform decodes what onramp encrypts (examples/platform/codec.py).
        "ONRAMP_PAYLOAD_KEYS": PAYLOAD_KEYS,
    }
    command = [sys.executable, "-m", "examples.platform", "worker"]
    child = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)


@pytest.mark.slow
async def test_a_platform_worker_killed_mid_activity_ends_with_one_tenant(
    checkout_stack: OpenStack, platform_store: Store
) -> None:
    hook_queue = f"platform-{uuid.uuid4().hex[:10]}"
    async with checkout_stack(worker_overrides={"provisioning_task_queue": hook_queue}) as stack:
        address = temporal_address_of(stack)
        user_id, _ = await stack.signup()
        with _platform_process(address, hook_queue, platform_store, setup_seconds=600) as first:
            started = await stack.checkout(user_id)
            assert (await stack.pay(started["checkout_session_id"])).status_code == 200
            # The first attempt made the tenant and is still running (heartbeating).
            await eventually(
                lambda: tenants_of(platform_store, user_id),
                lambda rows: len(rows) == 1,
                seconds=60,
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        running = await stack.status(user_id)
        assert running["provisioning_state"] == "running", running
        # A new worker: the attempt is retried once the heartbeat timeout has passed.
        with _platform_process(address, hook_queue, platform_store, setup_seconds=0.5):
            final = await stack.wait_status(
                user_id, lambda body: body["next_action"] == "set_password", seconds=90
            )
        (tenant,) = await tenants_of(platform_store, user_id)
        assert tenant["calls"] == 2  # the same key twice: one tenant
        assert tenant["state"] == "ready"
        assert final["tenant_id"] == tenant["tenant_id"]
        assert state_of(final) == ("paid", "completed", "sent", "set_password")
