"""`onramp dev --example` as a person runs it (`python -m devstack --example`), on the
session's Postgres and Temporal with its own sandbox, SMTP sink, worker, API and the
example platform's receiver and worker, every port a free one.

A journey over HTTP (signup → active → checkout paid in the sandbox → provisioned by the
example's worker → password set) reaches the example's receiver as `user.created`,
`user.active`, `checkout.paid`, `provisioning.completed`, `password.set`, in that order,
each verified with `standardwebhooks` and each `webhook-id` once. A checkout the example
refuses for good (its `enterprise` seats are sold out) is undone on both sides and
reaches the receiver as `provisioning.failed`. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from devstack import supervisor
from devstack.dev import DEV_ADMIN_KEY, DEV_CLIENT_KEY
from devstack.example import EVENT_TYPES
from devstack.processes import ChildProcess
from devstack.smtp_sink import read_messages
from tests.checkout.conftest import PASSWORD, link_in
from tests.support.harness import auth, temporal_address
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

JOURNEY = ["user.created", "user.active", "checkout.paid", "provisioning.completed", "password.set"]
READY_LINE = "onramp dev stack is ready"
ENDPOINTS = "/v1/admin/event-endpoints"
ADMIN = auth(DEV_ADMIN_KEY)


@dataclass
class DevExample:
    child: ChildProcess
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    receiver: httpx.AsyncClient
    state_dir: Path
    log: Path

    async def signup(self) -> tuple[str, str]:
        address = f"buyer-{uuid.uuid4().hex[:10]}@example.com"
        made = await self.api.post("/v1/users", json={"email": address, "username": "buyer"})
        assert made.status_code == 201, made.text
        return made.json()["id"], address

    async def pay_for(self, user_id: str, tier: str) -> None:
        started = await self.api.post(
            "/v1/checkout", json={"user_id": user_id, "tier": tier, "billing_cycle": "monthly"}
        )
        assert started.status_code == 201, started.text
        session = started.json()["checkout_session_id"]
        paid = await self.sandbox.post(
            f"/_sandbox/checkout/sessions/{session}/pay", json={"payment_method": "pm_card_visa"}
        )
        assert paid.status_code == 200, paid.text

    async def status_until(self, user_id: str, key: str, value: str) -> dict[str, Any]:
        async def status() -> dict[str, Any]:
            answer = await self.api.get(f"/v1/users/{user_id}/setup-status")
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        return await eventually(status, lambda body: body[key] == value, seconds=90)

    async def received(self, user_id: str, last_type: str) -> list[dict[str, Any]]:
        """What the example's receiver kept for the user, once `last_type` arrived."""

        async def listed() -> list[dict[str, Any]]:
            answer = await self.receiver.get("/onramp/events", params={"user_id": user_id})
            assert answer.status_code == 200, answer.text
            rows: list[dict[str, Any]] = answer.json()
            return rows

        return await eventually(
            listed, lambda rows: last_type in [row["type"] for row in rows], seconds=60
        )


def _dev_env(database_url: str, temporal: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        # The stack makes its own sandbox and SMTP sink, as on a fresh machine.
        if name not in ("STRIPE_API_BASE", "STRIPE_SECRET_KEY", "SMTP_URL")
    }
    ports = {name: str(supervisor.free_port()) for name in _PORTS}
    return {
        **env,
        **ports,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal,
        "TEMPORAL_TASK_QUEUE": f"onramp-dev-{uuid.uuid4().hex[:10]}",
        "PROVISIONING_TASK_QUEUE": f"example-platform-{uuid.uuid4().hex[:10]}",
        "WORKER_METRICS_ADDRESS": f"127.0.0.1:{supervisor.free_port()}",
        # The example platform's own setting: no seats left on this plan.
        "PLATFORM_SOLD_OUT_TIERS": "enterprise",
        "PLATFORM_SETUP_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }


_PORTS = ("ONRAMP_API_PORT", "ONRAMP_SANDBOX_PORT", "ONRAMP_SMTP_PORT", "ONRAMP_EXAMPLE_PORT")


def _text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def _until_ready(child: ChildProcess, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while READY_LINE not in _text(log):
        code = child.exit_code()
        assert code is None, f"onramp dev exited with {code}:\n{_text(log)[-4000:]}"
        assert time.monotonic() < deadline, f"not ready in {seconds} s:\n{_text(log)[-4000:]}"
        await asyncio.sleep(0.3)


@pytest.fixture
async def dev_env(
    postgres: supervisor.Postgres, temporal_env: WorkflowEnvironment
) -> dict[str, str]:
    database_url = await postgres.database(f"onramp_example_{uuid.uuid4().hex[:12]}")
    return _dev_env(database_url, temporal_address(temporal_env))


@contextlib.asynccontextmanager
async def running_dev(env: dict[str, str], directory: Path) -> AsyncIterator[DevExample]:
    """`onramp dev --example` in `directory` (its `.onramp/`: sandbox state, mail, the
    example's data), until the block ends."""
    log = directory / "onramp-dev.log"
    argv = [sys.executable, "-m", "devstack", "--example"]
    child = ChildProcess("onramp-dev", argv, env=env, cwd=directory, log_file=log).start()
    try:
        await _until_ready(child, log)
        local = "http://127.0.0.1"
        async with (
            httpx.AsyncClient(
                base_url=f"{local}:{env['ONRAMP_API_PORT']}", headers=auth(DEV_CLIENT_KEY)
            ) as api,
            httpx.AsyncClient(base_url=f"{local}:{env['ONRAMP_SANDBOX_PORT']}") as sandbox,
            httpx.AsyncClient(base_url=f"{local}:{env['ONRAMP_EXAMPLE_PORT']}") as receiver,
        ):
            yield DevExample(child, api, sandbox, receiver, directory / ".onramp", log)
    finally:
        child.stop(timeout=30)


async def _paid_and_provisioned(dev: DevExample) -> tuple[str, str]:
    user_id, address = await dev.signup()
    await dev.pay_for(user_id, "pro")
    done = await dev.status_until(user_id, "next_action", "set_password")
    assert done["tenant_id"] and done["dashboard_url"].endswith(f"/t/{done['tenant_id']}")
    messages = [m for m in read_messages(dev.state_dir / "mail") if m["To"] == address]
    token = parse_qs(urlsplit(link_in(messages[0])).query)["token"][0]
    set_password = await dev.api.post(
        "/v1/portal/set-password", json={"token": token, "password": PASSWORD}
    )
    assert set_password.status_code == 204, set_password.text
    return user_id, done["tenant_id"]


async def _refused(dev: DevExample) -> str:
    user_id, _ = await dev.signup()
    await dev.pay_for(user_id, "enterprise")
    failed = await dev.status_until(user_id, "provisioning_state", "failed")
    assert failed["tenant_id"] is None
    return user_id


async def test_onramp_dev_example_delivers_a_journey_and_a_refusal_to_the_example(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    async with running_dev(dev_env, tmp_path) as dev:
        (user_id, tenant_id), refused_id = await asyncio.gather(
            _paid_and_provisioned(dev), _refused(dev)
        )

        # Must show 1: the journey's events, in order, each verified and each id once.
        rows = await dev.received(user_id, "password.set")
        kinds = [row["type"] for row in rows if row["type"] != "subscription.tier_changed"]
        assert kinds == JOURNEY
        assert len({row["webhook_id"] for row in rows}) == len(rows)
        assert all(row["times_received"] == 1 for row in rows), rows
        assert all(row["webhook_id"] == row["event"]["id"] for row in rows)
        # The example's worker made the tenant onramp shows; the receiver serves its page.
        (tenant,) = (await dev.receiver.get("/tenants", params={"user_id": user_id})).json()
        assert (tenant["tenant_id"], tenant["state"], tenant["calls"]) == (tenant_id, "ready", 1)
        assert (await dev.receiver.get(f"/t/{tenant_id}")).status_code == 200

        # Must show 4: a permanent failure on the platform is undone and reported.
        refused = await dev.received(refused_id, "provisioning.failed")
        assert "provisioning.completed" not in [row["type"] for row in refused]
        (partial,) = (await dev.receiver.get("/tenants", params={"user_id": refused_id})).json()
        assert (partial["state"], partial["calls"]) == ("deprovisioned", 1)

        # onramp's side: one endpoint for every type, one successful attempt per event.
        endpoints = await dev.api.get(ENDPOINTS, headers=ADMIN)
        (endpoint,) = endpoints.json()["data"]
        assert sorted(endpoint["event_types"]) == EVENT_TYPES and len(EVENT_TYPES) == 11
        attempts = await dev.api.get(
            f"{ENDPOINTS}/{endpoint['id']}/deliveries",
            params={"limit": 500, "status": "delivered"},
            headers=ADMIN,
        )
        delivered = [row["event_id"] for row in attempts.json()["data"]]
        for row in [*rows, *refused]:
            assert delivered.count(row["webhook_id"]) == 1, row

        # The secret was handed over in the receiver's environment only.
        assert "whsec_" not in _text(dev.log)

        # Ctrl-C stops everything.
        process = dev.child.process
        assert process is not None
        process.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(process.wait, 60) == 0
        for client in (dev.api, dev.receiver):
            with pytest.raises(httpx.ConnectError):
                await client.get("/")
