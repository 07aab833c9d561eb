"""An onramp stack for one test: the API (ASGI), an in-process worker, the sandbox.

The worker runs the real workflows and activities on the test's own task queue, with
the official `stripe` client pointed at the session's sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from api.app import create_app
from onramp.settings import ApiSettings
from tests.support.harness import auth, open_app_client


class SandboxControl:
    """The sandbox's `/_sandbox/` control API."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def requests(self) -> list[dict[str, Any]]:
        response = await self.http.get("/_sandbox/requests")
        response.raise_for_status()
        body = response.json()
        entries: list[dict[str, Any]] = body["data"] if isinstance(body, dict) else body
        return entries

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def add_fault(self, **spec: Any) -> str:
        response = await self.http.post("/_sandbox/faults", json=spec)
        response.raise_for_status()
        fault_id: str = response.json()["id"]
        return fault_id

    async def clear_faults(self) -> None:
        (await self.http.delete("/_sandbox/faults")).raise_for_status()

    async def reset(self) -> None:
        (await self.http.post("/_sandbox/reset", json={})).raise_for_status()

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class Stack:
    api: httpx.AsyncClient
    stripe: stripe.StripeClient
    sandbox: SandboxControl
    task_queue: str
    temporal_address: str
    settings: ApiSettings

    @contextlib.asynccontextmanager
    async def api_with(self, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        """Another API instance on the same services, with some settings changed."""
        settings = self.settings.model_copy(update=overrides)
        async for client in open_app_client(create_app(settings)):
            yield client

    async def wait_for_active(self, response: httpx.Response, seconds: float = 120) -> str:
        """The user id of a signup answer, once the user is active (201, or 202 polled)."""
        assert response.status_code in (201, 202), response.text
        user_id: str = response.json()["id"]
        deadline = time.monotonic() + seconds
        while True:
            current = await self.api.get(f"/v1/users/{user_id}", headers=auth())
            if current.status_code == 200 and current.json()["status"] == "active":
                return user_id
            assert time.monotonic() < deadline, f"user {user_id} never became active"
            await asyncio.sleep(0.25)

    async def live_accounts_for(self, email: str) -> list[Any]:
        accounts = await self.stripe.v1.accounts.list_async({"limit": 100})
        return [account for account in accounts.data if account.email == email]
