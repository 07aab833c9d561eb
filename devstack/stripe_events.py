"""Signed Stripe events as Stripe would send them, for the tests and the benchmarks."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
import stripe

from onramp.stripe_client import STRIPE_API_VERSION


def new_event_id() -> str:
    return f"evt_test_{uuid.uuid4().hex}"


def stripe_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def event_body(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    livemode: bool = False,
    account: str | None = None,
) -> bytes:
    event: dict[str, Any] = {
        "id": event_id or new_event_id(),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": int(time.time()),
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }
    if account is not None:
        event["account"] = account
    return json.dumps(event).encode()


def event_id_of(body: bytes) -> str:
    found: str = json.loads(body)["id"]
    return found


def sign(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a delivery signed like Stripe signs it."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def subscription_object(customer: str) -> dict[str, Any]:
    return {
        "id": stripe_id("sub"),
        "object": "subscription",
        "customer": customer,
        "status": "active",
    }


async def create_user(
    db: asyncpg.Pool, *, customer: str | None = None, account: str | None = None
) -> str:
    """A user row as signup leaves it (ids NULL unless given)."""
    user_id = str(uuid.uuid4())
    await db.execute(
        """
        INSERT INTO users (id, email, username, status, stripe_customer_id, connect_account_id)
        VALUES ($1, $2, 'webhook-test', 'active', $3, $4)
        """,
        user_id,
        f"{user_id}@example.test",
        customer,
        account,
    )
    return user_id
