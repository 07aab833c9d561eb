"""The bench's event receiver: it verifies with standardwebhooks, records what it
accepted and fails the share of deliveries it is told to, half 500 and half reset."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from bench.event_receiver import EventReceiver
from onramp.event_secrets import new_secret


def _signed(secret: str, event_id: str, user_id: str) -> tuple[str, dict[str, str]]:
    body = json.dumps(
        {"id": event_id, "type": "user.created", "version": 1, "data": {"user_id": user_id}}
    )
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, now, body),
    }
    return body, headers


async def _post(url: str, body: str, headers: dict[str, str]) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return type(error).__name__
    return str(response.status_code)


async def test_a_healthy_receiver_accepts_and_records_only_verified_requests() -> None:
    secret = new_secret()
    async with EventReceiver.running() as receiver:
        receiver.secret = secret
        body, headers = _signed(secret, "evt_" + "1" * 32, "user-1")
        assert await _post(receiver.url, body, headers) == "204"
        wrong, wrong_headers = _signed(new_secret(), "evt_" + "2" * 32, "user-1")
        assert await _post(receiver.url, wrong, wrong_headers) == "400"
    assert receiver.unverified == 1
    [arrival] = receiver.arrivals
    assert (arrival.webhook_id, arrival.event_id, arrival.type, arrival.user_id) == (
        "evt_" + "1" * 32,
        "evt_" + "1" * 32,
        "user.created",
        "user-1",
    )
    assert arrival.outcome == "accepted" and arrival.at > 0


async def test_a_failing_receiver_answers_500_or_resets_its_share() -> None:
    secret = new_secret()
    async with EventReceiver.running(failure_share=0.5, seed=7) as receiver:
        receiver.secret = secret
        answers: Counter[str] = Counter()
        for index in range(60):
            body, headers = _signed(secret, f"evt_{index:032x}", "user-1")
            answers[await _post(receiver.url, body, headers)] += 1
    outcomes = receiver.injected()
    assert answers["204"] == outcomes["accepted"]
    assert answers["500"] == outcomes["answered 500"] > 0
    # The client sees a reset connection as a protocol or read error, never an answer.
    assert sum(answers.values()) - answers["204"] - answers["500"] == outcomes["connection reset"]
    assert outcomes["connection reset"] > 0
    assert 15 <= outcomes["answered 500"] + outcomes["connection reset"] <= 45


async def test_the_failures_of_one_event_can_be_capped() -> None:
    secret = new_secret()
    async with EventReceiver.running(1.0, seed=1, max_failures_per_event=1) as receiver:
        receiver.secret = secret
        body, headers = _signed(secret, "evt_" + "3" * 32, "user-1")
        first = await _post(receiver.url, body, headers)
        second = await _post(receiver.url, body, headers)
    assert first != "204" and second == "204"
