"""Stripe activities of `checkout-<user>`: create, expire and re-read a Checkout Session.

One Stripe side effect per activity; writes carry the key the workflow built
(`<workflow id>/<operation id>/<step>`), so a retry is answered from Stripe's
idempotency memory instead of creating a second session. Both writes go through
`write_once`: after a saved 500 (outcome unknown) they look for what the first attempt
did (the customer's session carrying this operation in its metadata; the session no
longer open) before writing again under a new key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import stripe
from stripe.checkout import Session
from stripe.params.checkout import SessionCreateParams
from temporalio import activity

from activities.stripe_gateway import call_stripe, write_once
from onramp.logging import log_event
from workflows.contracts.checkout import (
    CheckoutSessionSnapshot,
    CreateCheckoutSessionInput,
    ExpireCheckoutSessionInput,
)
from workflows.contracts.common import ReadStripeObjectInput
from workflows.contracts.subscription import CreateSetupSessionInput, SetupSessionSnapshot

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
    subscription = session.subscription
    subscription_status = invoice_status = subscription_customer = None
    if subscription is not None and not isinstance(subscription, str):
        subscription_status = getattr(subscription, "status", None)
        subscription_customer = _id(getattr(subscription, "customer", None))
        invoice = getattr(subscription, "latest_invoice", None)
        if invoice is not None and not isinstance(invoice, str):
            invoice_status = getattr(invoice, "status", None)
    return CheckoutSessionSnapshot(
        session_id=session.id,
        status=session.status,
        payment_status=session.payment_status,
        url=session.url,
        subscription_id=_id(subscription),
        customer_id=_id(session.customer),
        subscription_status=subscription_status,
        invoice_status=invoice_status,
        subscription_customer_id=subscription_customer,
    )


# A re-read brings the session's subscription and that subscription's latest invoice in
# the same request: only they say whether a delayed first payment failed.
REREAD_EXPAND = ["subscription.latest_invoice"]


async def create_session_once(
    client: stripe.StripeClient,
    params: SessionCreateParams,
    *,
    customer_id: str,
    workflow_id: str,
    operation: str,
) -> Session:
    """Create a Checkout Session (any mode) under the operation's key. After a saved 500
    the customer's sessions are searched first for the one this operation made, by the
    `workflow_id` and `operation` its metadata carries (`write_once`)."""

    def write(key: str) -> Awaitable[Session]:
        return client.v1.checkout.sessions.create_async(params, {"idempotency_key": key})

    async def find_outcome() -> Session | None:
        found = await call_stripe(
            "checkout.sessions.list",
            client.v1.checkout.sessions.list_async({"customer": customer_id, "limit": 100}),
        )
        for session in found.data:
            # A StripeObject, not a dict (stripe 16): read it as one.
            metadata = session.metadata.to_dict() if session.metadata is not None else {}
            if (
                metadata.get("workflow_id") == workflow_id
                and metadata.get("operation") == operation
            ):
                return session
        return None

    return await write_once("checkout.sessions.create", operation, write, find_outcome)


class StripeCheckoutActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def create_checkout_session(
        self, request: CreateCheckoutSessionInput
    ) -> CheckoutSessionSnapshot:
        """Create the session under the operation's key; after a saved 500 the customer's
        sessions are searched for this operation's (`metadata.operation`) first."""
        ids = {"user_id": request.user_id, "workflow_id": request.workflow_id}
        # Parameters as endive's `SessionCreateParams` has them (no `payment_method_types`:
        # Stripe picks the methods from the dashboard's payment method configuration).
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": request.customer_id,
            "line_items": [{"price": request.price_id, "quantity": 1}],
            "client_reference_id": request.user_id,
            "metadata": {**ids, "operation": request.idempotency_key},
            "subscription_data": {"metadata": ids},
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }

        session = await create_session_once(
            self.stripe, params, customer_id=request.customer_id,
            workflow_id=request.workflow_id, operation=request.idempotency_key,
        )  # fmt: skip
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
        current = await self._retrieve(request.session_id)
        if current.status != "open":
            return session_snapshot(current)

        def write(key: str) -> Awaitable[Session]:
            return self.stripe.v1.checkout.sessions.expire_async(
                request.session_id, options={"idempotency_key": key}
            )

        async def find_outcome() -> Session | None:
            # Expired by the unknown attempt, or paid meanwhile: either way not open.
            session = await self._retrieve(request.session_id)
            return None if session.status == "open" else session

        session = await write_once(
            "checkout.sessions.expire", request.idempotency_key, write, find_outcome
        )
        return session_snapshot(session)

    @activity.defn
    async def retrieve_checkout_session(
        self, request: ReadStripeObjectInput
    ) -> CheckoutSessionSnapshot:
        return session_snapshot(await self._retrieve(request.stripe_id))

    async def _retrieve(self, session_id: str) -> Session:
        return await call_stripe(
            "checkout.sessions.retrieve",
            self.stripe.v1.checkout.sessions.retrieve_async(session_id, {"expand": REREAD_EXPAND}),
        )


def setup_session_snapshot(session: Any) -> SetupSessionSnapshot:
    """A setup-mode session, with its SetupIntent (expanded) and that intent's method."""
    intent = session.setup_intent
    intent_status = payment_method = None
    if intent is not None and not isinstance(intent, str):
        intent_status = getattr(intent, "status", None)
        payment_method = _id(getattr(intent, "payment_method", None))
    return SetupSessionSnapshot(
        session_id=session.id,
        status=session.status,
        url=session.url,
        customer_id=_id(session.customer),
        setup_intent_id=_id(intent),
        setup_intent_status=intent_status,
        payment_method_id=payment_method,
    )


class StripeSetupSessionActivities:
    """Checkout in setup mode, for `subscription-<user>`: the customer enters a new
    payment method on Stripe's hosted page; onramp only reads what Stripe collected."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def create_setup_session(self, request: CreateSetupSessionInput) -> SetupSessionSnapshot:
        """Create the session under the operation's key; after a saved 500 the customer's
        sessions are searched for this operation's (`metadata.operation`) first."""
        params: SessionCreateParams = {
            "mode": "setup",
            "customer": request.customer_id,
            "currency": "usd",
            "client_reference_id": request.user_id,
            "metadata": {
                "user_id": request.user_id,
                "workflow_id": request.workflow_id,
                "operation": request.idempotency_key,
            },
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }

        session = await create_session_once(
            self.stripe, params, customer_id=request.customer_id,
            workflow_id=request.workflow_id, operation=request.idempotency_key,
        )  # fmt: skip
        log_event(
            logger, "SETUP_SESSION_CREATED", user_id=request.user_id,
            workflow_id=request.workflow_id, checkout_session_id=session.id,
        )  # fmt: skip
        return setup_session_snapshot(session)

    @activity.defn
    async def read_setup_session(self, request: ReadStripeObjectInput) -> SetupSessionSnapshot:
        session = await call_stripe(
            "checkout.sessions.retrieve",
            self.stripe.v1.checkout.sessions.retrieve_async(
                request.stripe_id, {"expand": ["setup_intent"]}
            ),
        )
        return setup_session_snapshot(session)
