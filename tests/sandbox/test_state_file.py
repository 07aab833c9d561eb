"""`--state-file`: a restarted sandbox keeps objects, events, clock and idempotency keys."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY, advance, make_customer, make_price, wait_for
from tests.support.sandbox_process import sandbox_process

pytestmark = pytest.mark.slow


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    with sandbox_process("--state-file", str(state), "--save-interval", "0.1") as url:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": url})
        customer = make_customer(client)
        sub = client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"price": make_price(client).id}]}
        )
        gone = client.v1.customers.create(params={"email": "gone@example.com"})
        client.v1.customers.delete(gone.id)
        keyed = client.v1.customers.create(
            params={"email": "keyed@example.com"}, options={"idempotency_key": "restart-key"}
        )
        with httpx.Client(base_url=f"{url}/_sandbox") as ctl:
            moved = advance(ctl, 3 * 3600)["now"]
        # Saved while running (debounced), not only at shutdown.
        wait_for(lambda: state.exists() and keyed.id in state.read_text(), 5.0, "a debounced save")

    saved = json.loads(state.read_text())
    assert saved["version"] == 1

    with sandbox_process("--state-file", str(state)) as url:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": url})
        assert client.v1.customers.retrieve(customer.id).email == "ada@example.com"
        assert client.v1.subscriptions.retrieve(sub.id).status == "active"
        assert client.v1.customers.retrieve(gone.id).to_dict()["deleted"] is True
        replay = client.v1.customers.create(
            params={"email": "keyed@example.com"}, options={"idempotency_key": "restart-key"}
        )
        assert replay.id == keyed.id
        types = {e.type for e in client.v1.events.list(params={"limit": 100}).data}
        assert {"customer.created", "customer.subscription.created", "invoice.paid"} <= types
        with httpx.Client(base_url=f"{url}/_sandbox") as ctl:
            assert ctl.get("/clock").json()["now"] >= moved
            assert ctl.get("/stats").json()["objects"]["customer"] == {"live": 2, "deleted": 1}


def test_state_is_saved_on_shutdown(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    # No debounced save can happen within the test: only the one at SIGTERM.
    with sandbox_process("--state-file", str(state), "--save-interval", "3600") as url:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": url})
        customer = client.v1.customers.create(params={"email": "late@example.com"})
    with sandbox_process("--state-file", str(state)) as url:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": url})
        assert client.v1.customers.retrieve(customer.id).email == "late@example.com"
