"""One sandbox process for the whole session, reset before each test, with a webhook
receiver for platform (`/platform`) and Connect (`/connect`) endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY, CONNECT_SECRET, PLATFORM_SECRET, Receiver, control
from tests.support.sandbox_process import sandbox_process


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_url(receiver: Receiver) -> Iterator[str]:
    with sandbox_process(
        "--webhook-url",
        f"{receiver.url}/platform",
        "--webhook-secret",
        PLATFORM_SECRET,
        "--connect-webhook-url",
        f"{receiver.url}/connect",
        "--connect-webhook-secret",
        CONNECT_SECRET,
        "--webhook-retry-initial",
        "0.05",
        "--webhook-retry-max",
        "0.2",
        "--webhook-attempts",
        "5",
    ) as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_sandbox(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty state (endpoints kept) and an empty receiver before every test that uses them."""
    if "sandbox_url" in request.fixturenames:
        url = request.getfixturevalue("sandbox_url")
        response = httpx.post(f"{url}/_sandbox/reset", json={})
        assert response.status_code == 200
        request.getfixturevalue("receiver").clear()
    yield


@pytest.fixture
def client(sandbox_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": sandbox_url})


@pytest.fixture
def ctl(sandbox_url: str) -> Iterator[httpx.Client]:
    with control(sandbox_url) as http:
        yield http


@pytest.fixture
def api(sandbox_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to `/v1/` with a test key, for headers the stripe library hides."""
    with httpx.Client(
        base_url=sandbox_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10.0
    ) as http:
        yield http
