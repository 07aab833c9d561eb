"""`onramp dev --example` keeps one event endpoint for the example across runs: a later
run finds it by its address, rotates its secret (the new one only that run knows) and
resumes it if an operator paused it; another address gets an endpoint of its own."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from api.app import create_app
from devstack.example import ENDPOINTS, EVENT_TYPES, endpoint_and_secret
from devstack.supervisor import free_port
from onramp.settings import ApiSettings
from tests.support.api_server import serve_app
from tests.support.harness import ADMIN_KEY, auth

pytestmark = pytest.mark.slow  # an API served over HTTP


async def test_a_later_run_keeps_the_endpoint_with_a_new_secret(
    api_settings: ApiSettings,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/onramp/events"
    async with serve_app(create_app(api_settings)) as api_url:

        def start_of_a_run(address: str) -> tuple[str, str]:
            with httpx.Client(base_url=api_url, headers=auth(ADMIN_KEY), timeout=30) as api:
                return endpoint_and_secret(api, address)

        async with httpx.AsyncClient(base_url=api_url, headers=auth(ADMIN_KEY)) as api:
            first_id, first_secret = await asyncio.to_thread(start_of_a_run, url)
            paused = await api.post(f"{ENDPOINTS}/{first_id}/pause")
            assert paused.status_code == 200, paused.text
            second_id, second_secret = await asyncio.to_thread(start_of_a_run, url)
            endpoint = (await api.get(f"{ENDPOINTS}/{first_id}")).json()
            elsewhere = f"http://127.0.0.1:{free_port()}/onramp/events"
            other_id, _ = await asyncio.to_thread(start_of_a_run, elsewhere)
    assert second_id == first_id and second_secret != first_secret
    assert first_secret.startswith("whsec_") and second_secret.startswith("whsec_")
    assert endpoint["status"] == "active" and endpoint["previous_secret_expires_at"]
    assert (endpoint["url"], sorted(endpoint["event_types"])) == (url, EVENT_TYPES)
    assert other_id != first_id
