"""Stripe's test-mode rate limits in the sandbox, and onramp's client staying under them."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import httpx
import pytest
import stripe

from onramp.stripe_client import RequestPacer, build_stripe_client
from sandbox.__main__ import parse_args
from sandbox.domain.rate_limits import RateLimits
from tests.sandbox.helpers import wait_for


def _key() -> str:
    """A fresh API key: its own account, so its own full buckets."""
    return f"sk_test_rl_{uuid.uuid4().hex}"


async def _burst(url: str, key: str, method: str, path: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        return list(await asyncio.gather(*(http.request(method, path) for _ in range(count))))


def test_a_burst_beyond_25_per_second_is_refused_like_stripe(sandbox_url: str) -> None:
    answers = asyncio.run(_burst(sandbox_url, _key(), "GET", "/v1/customers", 100))
    limited = [a for a in answers if a.status_code == 429]
    accepted = [a for a in answers if a.status_code == 200]
    assert len(limited) + len(accepted) == 100
    assert len(accepted) >= 25 and limited
    for answer in limited:
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("invalid_request_error", "rate_limit")
        assert answer.headers["Stripe-Rate-Limited-Reason"] == "global-rate"
        # Stripe does not ask for a retry, so stripe-python does not retry by itself.
        assert "Stripe-Should-Retry" not in answer.headers


def test_accounts_are_created_at_most_5_per_second(sandbox_url: str) -> None:
    key = _key()
    answers = asyncio.run(_burst(sandbox_url, key, "POST", "/v1/accounts", 20))
    limited = [a for a in answers if a.status_code == 429]
    assert limited and sum(1 for a in answers if a.status_code == 200) >= 5
    assert {a.headers["Stripe-Rate-Limited-Reason"] for a in limited} == {"endpoint-rate"}
    # Other endpoints of the same account still answer.
    reads = asyncio.run(_burst(sandbox_url, key, "GET", "/v1/customers", 1))
    assert reads[0].status_code == 200


def test_limits_are_per_api_key_and_not_retried_by_stripe(
    sandbox_url: str, ctl: httpx.Client
) -> None:
    assert ctl.post("/rate_limits", json={"rate": 2}).json()["rate"] == 2
    key = _key()
    client = stripe.StripeClient(key, base_addresses={"api": sandbox_url}, max_network_retries=3)
    with pytest.raises(stripe.RateLimitError) as excinfo:
        for _ in range(10):
            client.v1.customers.list()
    assert excinfo.value.error is not None and excinfo.value.error.code == "rate_limit"
    statuses = [r["status"] for r in ctl.get("/requests").json()["data"]]
    assert statuses[-1] == 429 and statuses.count(429) == 1  # no retry by the library
    other = stripe.StripeClient(_key(), base_addresses={"api": sandbox_url})
    assert other.v1.customers.list().data == []
    assert ctl.get("/stats").json()["rate_limited"] == {"global-rate": 1}


@pytest.mark.slow
def test_a_limited_request_is_not_saved_under_its_key(
    sandbox_url: str, api: httpx.Client, ctl: httpx.Client
) -> None:
    ctl.post("/rate_limits", json={"rate": 1})
    headers = {"Idempotency-Key": f"rl-{uuid.uuid4()}"}
    answers = [api.post("/v1/customers", data={"email": "k@example.com"}, headers=headers)]
    while answers[-1].status_code != 429:
        answers.append(api.post("/v1/customers", data={"email": "k@example.com"}, headers=headers))
    # The limiter runs before the idempotency layer: once tokens are back, the same key
    # is answered from the first request's saved result, not the 429.
    replay = wait_for(
        lambda: (
            r
            if (
                r := api.post("/v1/customers", data={"email": "k@example.com"}, headers=headers)
            ).status_code
            != 429
            else None
        ),
        10.0,
        "a token",
    )
    assert replay.status_code == 200
    assert replay.json()["id"] == answers[0].json()["id"]
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == 1


def test_reset_restores_the_started_limits(ctl: httpx.Client) -> None:
    ctl.post("/rate_limits", json={"rate": 3, "endpoint_rate": 2})
    assert ctl.post("/rate_limits", json={"rate": -1}).status_code == 400
    ctl.post("/reset", json={})
    limits = ctl.get("/rate_limits").json()
    assert (limits["rate"], limits["endpoint_rate"]) == (25.0, 25.0)
    assert limits["specific"] == {"POST /v1/accounts": 5.0}


def test_command_line_flags() -> None:
    default = parse_args([])
    assert (default.rate_limit, default.endpoint_rate_limit) == (25.0, 25.0)
    off = parse_args(["--rate-limit", "0"])
    assert not RateLimits(off.rate_limit, off.endpoint_rate_limit).enabled
    assert RateLimits(off.rate_limit).check("sk_test_x", "GET", "/v1/customers") is None


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limits = RateLimits(2, 25, clock=lambda: now[0])
    taken = [limits.check("sk_test_x", "GET", "/v1/customers") is None for _ in range(3)]
    assert taken == [True, True, False]
    now[0] = 0.5  # one token back
    assert limits.check("sk_test_x", "GET", "/v1/customers") is None
    assert limits.check("sk_test_x", "GET", "/v1/customers") is not None


def test_pacer_schedule_allows_a_small_burst_then_spaces_requests() -> None:
    pacer = RequestPacer(rate=10, burst=5)
    delays = [pacer.reserve() for _ in range(8)]
    assert all(d == 0 for d in delays[:5])
    # After the burst each request waits one more interval (0.1 s) than the previous one.
    steps = [b - a for a, b in itertools.pairwise(delays[4:])]
    assert all(0.05 < step < 0.15 for step in steps), steps


@pytest.mark.slow
async def test_onramp_client_keeps_a_concurrent_burst_under_the_limit(sandbox_url: str) -> None:
    client = build_stripe_client(_key(), sandbox_url, max_network_retries=0)
    created = await asyncio.gather(
        *(client.v1.customers.create_async({"email": f"burst{i}@example.com"}) for i in range(60))
    )
    assert len({customer.id for customer in created}) == 60
    async with httpx.AsyncClient(base_url=f"{sandbox_url}/_sandbox") as ctl:
        stats = (await ctl.get("/stats")).json()
    assert stats["rate_limited"] == {}
    assert not [row for row in stats["requests"] if row["status"] == 429]
