"""The onboarding stack: the `stack` fixture's worker and sandbox, plus the API served
over real HTTP (uvicorn on a free port), so the sandbox can deliver Connect webhooks
to it and the hosted page can redirect back to it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from api.app import create_app
from tests.support.api_server import serve_app
from tests.support.harness import WEBHOOK_SECRETS, auth
from tests.support.stack import Stack


@dataclass
class Served:
    """The API over real HTTP, with its public URL pointing at itself."""

    stack: Stack
    http: httpx.AsyncClient
    base_url: str
    pool: asyncpg.Pool

    async def signup(self, *, payouts: bool = False) -> tuple[str, str]:
        email = f"onb-{uuid.uuid4().hex[:10]}@example.com"
        response = await self.http.post(
            "/v1/users",
            json={"email": email, "username": "onb", "payouts": payouts},
            headers=auth(),
        )
        return await self.stack.wait_for_active(response), email

    async def issue(self, user_id: str) -> dict[str, Any]:
        response = await self.http.post(f"/v1/users/{user_id}/onboarding", headers=auth())
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def status(self, user_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/users/{user_id}/onboarding", headers=auth())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def token_row(self, user_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM onboarding_tokens WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1",
            user_id,
        )
        assert row is not None
        return row

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], what: str, seconds: float = 30
    ) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def serve_onboarding(
    stack: Stack, pool: asyncpg.Pool, *, webhooks: bool, poll_seconds: float
) -> AsyncIterator[Served]:
    settings = stack.settings.model_copy(update={"onboarding_poll_seconds": poll_seconds})
    app = create_app(settings)
    async with serve_app(app) as base_url:
        app.state.settings = settings.model_copy(update={"onramp_public_url": base_url})
        endpoint = {"url": f"{base_url}/v1/webhooks/stripe", "connect": True}
        if webhooks:
            registered = await stack.sandbox.http.post(
                "/_sandbox/webhooks/endpoints", json={**endpoint, "secret": WEBHOOK_SECRETS[1]}
            )
            registered.raise_for_status()
        try:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                yield Served(stack=stack, http=http, base_url=base_url, pool=pool)
        finally:
            if webhooks:
                await stack.sandbox.http.request(
                    "DELETE", "/_sandbox/webhooks/endpoints", json=endpoint
                )
