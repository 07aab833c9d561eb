"""After a whole journey on the real stack with payload keys set, Temporal holds no
personal data in the clear: `temporal workflow show --output json` of every workflow type
onramp runs shows no email, username or Stripe id. The codec server opens those payloads
for an admin key only, and a key rotation keeps old histories readable while new ones
name the new key.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from temporalio.client import Client

from devstack.processes import find_executable
from onramp.settings import parse_payload_keys
from tests.checkout import conftest as checkout_fixtures
from tests.checkout.conftest import CheckoutStack, OpenStack
from tests.events.receiver import Receiver
from tests.support.harness import ADMIN_KEY, CLIENT_KEY, PAYLOAD_KEYS, auth
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.checkout import checkout_workflow_id
from workflows.contracts.event_delivery import (
    event_delivery_workflow_id,
    event_dispatch_workflow_id,
)
from workflows.contracts.onboarding import onboarding_workflow_id
from workflows.contracts.password_link import password_link_workflow_id
from workflows.contracts.signup import signup_workflow_id
from workflows.contracts.subscription import subscription_workflow_id

pytestmark = pytest.mark.slow

# The checkout stack (worker in this process, API over HTTP, SMTP sink), shared by name.
checkout_stack = checkout_fixtures.checkout_stack
catalog = checkout_fixtures.catalog
mail = checkout_fixtures.mail

# Stripe ids as the sandbox makes them (`cus_` + 14, `cs_test_a1…`, …); the length keeps
# words such as `in_progress` out.
STRIPE_ID = re.compile(r"\b(?:cus|sub|cs|acct|in|pm)_[A-Za-z0-9]{14,}")
ENCRYPTED = base64.b64encode(b"binary/encrypted").decode()
NEW_KEY = "test-key-2:" + base64.b64encode(b"onramp-tests-rotated-key-32bytes").decode()


def _show(address: str, workflow_id: str) -> str:
    """`temporal workflow show --output json`: what anyone with access to Temporal reads."""
    import subprocess

    executable = find_executable("temporal")
    assert executable is not None
    shown = subprocess.run(
        [executable, "workflow", "show", "--address", address, "--namespace", "default",
         "--workflow-id", workflow_id, "--output", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def _payloads(node: Any) -> Iterator[dict[str, Any]]:
    """Every payload (`{"metadata": {...}, "data": ...}`) in a history's JSON."""
    if isinstance(node, dict):
        if isinstance(node.get("metadata"), dict) and "encoding" in node["metadata"]:
            yield node
        for value in node.values():
            yield from _payloads(value)
    elif isinstance(node, list):
        for item in node:
            yield from _payloads(item)


def _in_the_clear(shown: str) -> str:
    """The output as a reader sees it, with every payload that is not encrypted decoded
    from its base64 (search attributes, memos, anything a codec did not seal)."""
    decoded = [
        base64.b64decode(payload.get("data", "")).decode("utf-8", "replace")
        for payload in _payloads(json.loads(shown))
        if payload["metadata"]["encoding"] != ENCRYPTED
    ]
    return "\n".join([shown, *decoded])


def _key_ids(history: dict[str, Any]) -> set[str]:
    return {
        base64.b64decode(payload["metadata"].get("encryption-key-id", "")).decode()
        for payload in _payloads(history)
        if payload["metadata"]["encoding"] == ENCRYPTED
    }


async def _history(client: Client, workflow_id: str) -> dict[str, Any]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    document: dict[str, Any] = history.to_json_dict()
    return document


async def _signup(stack: CheckoutStack, *, payouts: bool = False) -> tuple[str, str, str]:
    email, username = f"enc-{uuid.uuid4().hex[:10]}@example.com", f"enc{uuid.uuid4().hex[:12]}"
    response = await stack.api.post(
        "/v1/users",
        json={"email": email, "username": username, "payouts": payouts},
        headers=auth(),
    )
    assert response.status_code in (201, 202), response.text
    user_id: str = response.json()["id"]
    await eventually(lambda: _user(stack, user_id), lambda body: body["status"] == "active")
    return user_id, email, username


async def _user(stack: CheckoutStack, user_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"/v1/users/{user_id}", headers=auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _onboard(stack: CheckoutStack, user_id: str) -> None:
    issued = await stack.api.post(f"/v1/users/{user_id}/onboarding", headers=auth())
    assert issued.status_code == 201, issued.text
    token = parse_qs(urlsplit(issued.json()["url"]).query)["token"][0]
    opened = await stack.api.get(
        "/v1/onboard", params={"token": token}, headers={"Accept": "application/json"}
    )
    assert opened.status_code == 200, opened.text


async def _pay(stack: CheckoutStack, user_id: str) -> None:
    started = await stack.checkout(user_id)
    paid = await stack.pay(started["checkout_session_id"])
    assert paid.status_code == 200, paid.text
    await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password", seconds=60)


async def _stripe_ids(stack: CheckoutStack, user_id: str) -> set[str]:
    row = await stack.db.fetchrow(
        "SELECT u.stripe_customer_id, u.connect_account_id, b.stripe_subscription_id "
        "FROM users u LEFT JOIN billing b ON b.user_id = u.id WHERE u.id = $1",
        uuid.UUID(user_id),
    )
    assert row is not None
    return {value for value in row.values() if value}


async def test_no_history_of_a_journey_holds_personal_data_in_the_clear(
    checkout_stack: OpenStack,
) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        async with checkout_stack() as stack:
            endpoint = await stack.api.post(
                "/v1/admin/event-endpoints",
                json={"url": receiver.url, "event_types": ["*"]},
                headers=auth(ADMIN_KEY),
            )
            assert endpoint.status_code == 201, endpoint.text
            endpoint_id = endpoint.json()["id"]
            receiver.secrets.append(endpoint.json()["secret"])
            # The first delivery fails, so the user's events go through a retry lane:
            # its history is checked too (a healthy endpoint delivers without one).
            receiver.fail_next = 1

            user_id, email, username = await _signup(stack, payouts=True)
            await _onboard(stack, user_id)
            await _pay(stack, user_id)
            # A fresh set-password link: the password-link workflow, by email address.
            resent = await stack.api.post("/v1/portal/set-password/resend", json={"email": email})
            assert resent.status_code == 202, resent.text
            await eventually(lambda: _mails(stack, email), lambda sent: sent >= 2, seconds=60)
            await eventually(lambda: _received(receiver, user_id), bool, seconds=90)
            stripe_ids = await _stripe_ids(stack, user_id)
            workflow_ids = {
                "signup": signup_workflow_id(user_id),
                "checkout": checkout_workflow_id(user_id),
                "subscription": subscription_workflow_id(user_id),
                "onboarding": onboarding_workflow_id(user_id),
                "password-link": password_link_workflow_id(user_id),
                "event dispatch": event_dispatch_workflow_id(endpoint_id),
                "event delivery": event_delivery_workflow_id(endpoint_id, user_id),
            }
            address = stack.temporal.service_client.config.target_host
            shown = {
                kind: await asyncio.to_thread(_show, address, workflow_id)
                for kind, workflow_id in workflow_ids.items()
            }
            for name in ("signup", "checkout"):
                await record_history(stack.temporal, workflow_ids[name], f"{name}_encrypted")
            await _codec_server_opens_them_for_admins_only(stack, workflow_ids["signup"], email)
    finally:
        await receiver.stop()

    # The journey made what must not show: a customer, a Connect account, a subscription.
    assert {value[:4] for value in stripe_ids} >= {"cus_", "acct", "sub_"}, stripe_ids
    for kind, text in shown.items():
        assert ENCRYPTED in text, f"{kind}: no encrypted payload at all"
        assert len(json.loads(text)["events"]) > 2, kind
        clear = _in_the_clear(text)
        for secret in (email, username, *stripe_ids):
            assert secret not in clear, f"{kind} shows {secret} in the clear"
        assert not STRIPE_ID.findall(clear), f"{kind} shows {STRIPE_ID.findall(clear)}"
        assert "@example.com" not in clear, kind


async def _mails(stack: CheckoutStack, address: str) -> int:
    return len(stack.mail.to(address))


async def _received(receiver: Receiver, user_id: str) -> list[str]:
    return receiver.ids(user_id)


async def _codec_server_opens_them_for_admins_only(
    stack: CheckoutStack, signup_id: str, email: str
) -> None:
    history = await _history(stack.temporal, signup_id)
    sealed = [p for p in _payloads(history) if p["metadata"]["encoding"] == ENCRYPTED]
    assert sealed and _key_ids(history) == {"test-key-1"}
    body = {"payloads": sealed}
    opened = await stack.api.post("/v1/codec/decode", json=body, headers=auth(ADMIN_KEY))
    assert opened.status_code == 200, opened.text
    plain = b"".join(base64.b64decode(p.get("data", "")) for p in opened.json()["payloads"])
    assert email.encode() in plain
    for headers, status in ((auth(CLIENT_KEY), 403), ({}, 401)):
        refused = await stack.api.post("/v1/codec/decode", json=body, headers=headers)
        assert refused.status_code == status
        assert email not in refused.text


async def test_after_a_rotation_old_histories_decode_and_new_ones_name_the_new_key(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        before, before_email, _ = await _signup(stack)

    rotated = f"{NEW_KEY},{PAYLOAD_KEYS}"
    overrides = {"onramp_payload_keys": parse_payload_keys(rotated)}
    async with checkout_stack(worker=False, api_overrides=overrides) as stack:
        stack.worker_env["ONRAMP_PAYLOAD_KEYS"] = rotated
        stack.start_worker_process()  # a worker deployed with the rotated keys
        after, after_email, _ = await _signup(stack)
        await _pay(stack, after)  # the new worker runs a whole checkout on the new key

        old = await _history(stack.temporal, signup_workflow_id(before))
        new = await _history(stack.temporal, signup_workflow_id(after))
        checkout = await _history(stack.temporal, checkout_workflow_id(after))
        assert _key_ids(old) == {"test-key-1"}
        assert _key_ids(new) == {"test-key-2"} and _key_ids(checkout) == {"test-key-2"}
        for history, email in ((old, before_email), (new, after_email)):
            sealed = [p for p in _payloads(history) if p["metadata"]["encoding"] == ENCRYPTED]
            opened = await stack.api.post(
                "/v1/codec/decode", json={"payloads": sealed}, headers=auth(ADMIN_KEY)
            )
            assert opened.status_code == 200, opened.text
            assert email in json.dumps(
                [base64.b64decode(p.get("data", "")).decode() for p in opened.json()["payloads"]]
            )

    # A deployment still on the old key alone says clearly which key it lacks.
    async with checkout_stack(worker=False) as stack:
        sealed = [p for p in _payloads(new) if p["metadata"]["encoding"] == ENCRYPTED]
        refused = await stack.api.post(
            "/v1/codec/decode", json={"payloads": sealed}, headers=auth(ADMIN_KEY)
        )
        assert refused.status_code == 422
        assert "test-key-2" in refused.json()["error"]["message"]
