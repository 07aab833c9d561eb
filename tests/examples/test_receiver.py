"""The example platform's receiver: a request signed with the endpoint's secret is kept
once per `webhook-id`; a bad signature is refused with 400 and kept nowhere."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from examples.platform.receiver import create_app
from examples.platform.store import Store


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


SECRET, NEXT_SECRET, OTHER_SECRET = _new_secret(), _new_secret(), _new_secret()


def _signed(
    event: dict[str, Any], *signing: str, webhook_id: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers onramp sends: one `v1,` signature per secret."""
    body = json.dumps(event)
    now = datetime.now(UTC)
    msg_id = webhook_id or event["id"]
    signatures = " ".join(Webhook(secret).sign(msg_id, now, body) for secret in signing)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
    return body.encode(), headers


def _event(type_: str = "user.created", user_id: str = "u-1") -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(16)}",
        "type": type_,
        "version": 1,
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {"user_id": user_id},
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "platform.db")


@pytest.fixture
async def receiver(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    # The receiver verifies with both secrets of a rotation's overlap.
    app = create_app(store, [SECRET, NEXT_SECRET])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://platform") as client:
        yield client


async def test_a_signed_event_is_kept_and_a_repeat_adds_nothing(
    receiver: httpx.AsyncClient, store: Store
) -> None:
    first, second = _event("user.created"), _event("user.active")
    for event in (first, second, first):
        body, headers = _signed(event, SECRET)
        answer = await receiver.post("/onramp/events", content=body, headers=headers)
        assert answer.status_code == 204, answer.text
    listed = (await receiver.get("/onramp/events")).json()
    assert [item["webhook_id"] for item in listed] == [first["id"], second["id"]]
    assert [item["times_received"] for item in listed] == [2, 1]
    assert listed[0]["event"] == first and listed[0]["type"] == "user.created"
    assert [item["webhook_id"] for item in store.events("u-1")] == [first["id"], second["id"]]


async def test_a_bad_signature_is_refused_and_kept_nowhere(
    receiver: httpx.AsyncClient, store: Store
) -> None:
    event = _event()
    body, headers = _signed(event, OTHER_SECRET)
    wrong_secret = await receiver.post("/onramp/events", content=body, headers=headers)
    body, headers = _signed(event, SECRET)
    tampered = await receiver.post(
        "/onramp/events", content=body.replace(b"u-1", b"u-2"), headers=headers
    )
    unsigned = await receiver.post(
        "/onramp/events",
        content=body,
        headers={k: v for k, v in headers.items() if k != "webhook-signature"},
    )
    old = {**headers, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()) - 3600)}
    replayed_late = await receiver.post("/onramp/events", content=body, headers=old)
    for answer in (wrong_secret, tampered, unsigned, replayed_late):
        assert answer.status_code == 400, answer.text
    assert store.events() == []
    assert (await receiver.get("/onramp/events")).json() == []


async def test_either_secret_of_a_rotation_verifies(
    receiver: httpx.AsyncClient, store: Store
) -> None:
    # During a rotation onramp signs with the old and the new secret; a receiver that
    # already has only one of them verifies either way.
    both, only_new = _event(), _event()
    for event, signing in ((both, (OTHER_SECRET, SECRET)), (only_new, (NEXT_SECRET,))):
        body, headers = _signed(event, *signing)
        answer = await receiver.post("/onramp/events", content=body, headers=headers)
        assert answer.status_code == 204, answer.text
    assert [item["webhook_id"] for item in store.events()] == [both["id"], only_new["id"]]


def test_the_receiver_refuses_to_start_without_a_secret(store: Store) -> None:
    with pytest.raises(ValueError, match="ONRAMP_EVENTS_SECRET"):
        create_app(store, [])
