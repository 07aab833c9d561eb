"""Stripe activities of `checkout-<user>`: create, expire and re-read a Checkout Session.

One Stripe side effect per activity; writes carry the key the workflow built
(`<workflow id>/<operation id>/<step>`), so a retry is answered from Stripe's
idempotency memory instead of creating a second session.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from temporalio import activity

from activities.stripe_gateway import call_stripe
from onramp.logging import log_event
from workflows.contracts import (
    CheckoutSessionSnapshot,
    CreateCheckoutSessionInput,
    ExpireCheckoutSessionInput,
    ReadStripeObjectInput,
)

logger = logging.getLogger(__name__)


def _id(value: Any) -> str | None:
    """An id field that may arrive expanded (`{"id": …}`)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = getattr(value, "id", None)
    return found if isinstance(found, str) else None


def session_snapshot(session: Any) -> CheckoutSessionSnapshot:
    return CheckoutSessionSnapshot(
        session_id=session.id,
        status=session.status,
        payment_status=session.payment_status,
        url=session.url,
        subscription_id=_id(session.subscription),
        customer_id=_id(session.customer),
    )


class StripeCheckoutActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def create_checkout_session(
        self, request: CreateCheckoutSessionInput
    ) -> CheckoutSessionSnapshot:
        ids = {"user_id": request.user_id, "workflow_id": request.workflow_id}
        session = await call_stripe(
            "checkout.sessions.create",
            self.stripe.v1.checkout.sessions.create_async(
                {
                    "mode": "subscription",
                    "customer": request.customer_id,
                    "line_items": [{"price": request.price_id, "quantity": 1}],
                    "client_reference_id": request.user_id,
                    "metadata": ids,
                    "subscription_data": {"metadata": ids},
                    "success_url": request.success_url,
                    "cancel_url": request.cancel_url,
                },
                {"idempotency_key": request.idempotency_key},
            ),
        )
        log_event(
            logger, "CHECKOUT_SESSION_CREATED", user_id=request.user_id,
            workflow_id=request.workflow_id, checkout_session_id=session.id,
        )  # fmt: skip
        return session_snapshot(session)

    @activity.defn
    async def expire_checkout_session(
        self, request: ExpireCheckoutSessionInput
    ) -> CheckoutSessionSnapshot:
        """Expire an open session; one that is no longer open is returned as it is."""
        current = await call_stripe(
            "checkout.sessions.retrieve",
            self.stripe.v1.checkout.sessions.retrieve_async(request.session_id),
        )
        if current.status != "open":
            return session_snapshot(current)
        session = await call_stripe(
            "checkout.sessions.expire",
            self.stripe.v1.checkout.sessions.expire_async(
                request.session_id, options={"idempotency_key": request.idempotency_key}
            ),
        )
        return session_snapshot(session)

    @activity.defn
    async def retrieve_checkout_session(
        self, request: ReadStripeObjectInput
    ) -> CheckoutSessionSnapshot:
        session = await call_stripe(
            "checkout.sessions.retrieve",
            self.stripe.v1.checkout.sessions.retrieve_async(request.stripe_id),
        )
        return session_snapshot(session)
