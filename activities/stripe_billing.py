"""Stripe activities of `subscription-<user>`: one Stripe side effect each.

Reads re-fetch the subscription or invoice (events are triggers, not truth). Writes
carry the key `<workflow id>/<update id>/<step>` built by the workflow.
Object shapes follow the library's API version: the period end lives on the
subscription item, an invoice's subscription under `parent.subscription_details`.

Every write goes through `write_once` with a `find_outcome` that re-reads what onramp
controls (the customer's subscriptions by `metadata.operation`, the object by id and the
state the write intended), so a saved 500 never makes a second object.

Payments follow Stripe's SCA model: a new subscription is created `default_incomplete`
and its first invoice paid explicitly; a price change uses `pending_if_incomplete`
(Stripe keeps the old price until the new invoice is paid). Paying answers paid,
`requires_action` (402 `invoice_payment_intent_requires_action`: the customer must
authenticate on the hosted invoice page) or declined.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import stripe
from stripe.params import InvoicePayParams, SubscriptionCancelParams
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.stripe_gateway import call_stripe, write_once
from activities.stripe_snapshots import id_of, invoice_snapshot, plain, subscription_snapshot
from onramp.logging import log_event
from workflows import errors
from workflows.contracts.common import ReadStripeObjectInput
from workflows.contracts.subscription import (
    ENDED_SUBSCRIPTION_STATUSES,
    AttachPaymentMethodInput,
    CancelSubscriptionInput,
    ChangePriceInput,
    CreateSubscriptionInput,
    InvoicePaymentResult,
    InvoiceSnapshot,
    PayInvoiceInput,
    SetCancelAtPeriodEndInput,
    SetDefaultPaymentMethodInput,
    SetSubscriptionPaymentMethodInput,
    SubscriptionSnapshot,
)

T = TypeVar("T")
logger = logging.getLogger(__name__)


# Stripe's code for an invoice payment that needs the customer (3-D Secure): the invoice
# stays open and its hosted page lets the customer authenticate.
REQUIRES_ACTION_CODE = "invoice_payment_intent_requires_action"


class _Missing(Exception):
    """Stripe answered 404 for a retrieve."""


async def _existing(call: Awaitable[T]) -> T:
    try:
        return await call
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            raise _Missing(str(error.user_message or error)) from None
        raise


def _gone(kind: str, stripe_id: str, detail: str) -> ApplicationError:
    return ApplicationError(
        f"{kind} {stripe_id} is gone at Stripe (404): {detail}",
        type=errors.STRIPE_OBJECT_MISSING,
        non_retryable=True,
    )


class StripeBillingActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    async def _subscription(self, subscription_id: str) -> Any:
        return await call_stripe(
            "subscriptions.retrieve", self.stripe.v1.subscriptions.retrieve_async(subscription_id)
        )

    async def _invoice(self, invoice_id: str) -> Any:
        return await call_stripe(
            "invoices.retrieve", self.stripe.v1.invoices.retrieve_async(invoice_id)
        )

    @activity.defn
    async def read_subscription(self, request: ReadStripeObjectInput) -> SubscriptionSnapshot:
        try:
            sub = await call_stripe(
                "subscriptions.retrieve",
                _existing(self.stripe.v1.subscriptions.retrieve_async(request.stripe_id)),
            )
        except _Missing as missing:
            raise _gone("subscription", request.stripe_id, str(missing)) from None
        return subscription_snapshot(sub)

    @activity.defn
    async def read_invoice(self, request: ReadStripeObjectInput) -> InvoiceSnapshot:
        try:
            inv = await call_stripe(
                "invoices.retrieve",
                _existing(self.stripe.v1.invoices.retrieve_async(request.stripe_id)),
            )
        except _Missing as missing:
            raise _gone("invoice", request.stripe_id, str(missing)) from None
        return invoice_snapshot(inv)

    @activity.defn
    async def attach_payment_method(self, request: AttachPaymentMethodInput) -> str:
        async def attach(key: str) -> str:
            pm = await self.stripe.v1.payment_methods.attach_async(
                request.payment_method, {"customer": request.customer_id}, {"idempotency_key": key}
            )
            return pm.id

        async def find_outcome() -> str | None:
            pm = plain(
                await call_stripe(
                    "payment_methods.retrieve",
                    self.stripe.v1.payment_methods.retrieve_async(request.payment_method),
                )
            )
            return str(pm["id"]) if id_of(pm.get("customer")) == request.customer_id else None

        return await write_once(
            "payment_methods.attach", request.idempotency_key, attach, find_outcome
        )

    @activity.defn
    async def set_default_payment_method(self, request: SetDefaultPaymentMethodInput) -> None:
        async def update(key: str) -> str:
            await self.stripe.v1.customers.update_async(
                request.customer_id,
                {"invoice_settings": {"default_payment_method": request.payment_method_id}},
                {"idempotency_key": key},
            )
            return request.payment_method_id

        async def find_outcome() -> str | None:
            customer = plain(
                await call_stripe(
                    "customers.retrieve",
                    self.stripe.v1.customers.retrieve_async(request.customer_id),
                )
            )
            settings = customer.get("invoice_settings") or {}
            current = id_of(settings.get("default_payment_method"))
            return current if current == request.payment_method_id else None

        await write_once("customers.update", request.idempotency_key, update, find_outcome)

    @activity.defn
    async def create_subscription(self, request: CreateSubscriptionInput) -> SubscriptionSnapshot:
        """A subscription `incomplete` until its first invoice is paid (`pay_invoice`):
        nothing is charged by the create itself, so a card that needs authentication
        gets a hosted page instead of a 402 with no way forward."""
        operation = request.idempotency_key

        async def create(key: str) -> SubscriptionSnapshot:
            sub = await self.stripe.v1.subscriptions.create_async(
                {
                    "customer": request.customer_id,
                    "items": [{"price": request.price_id}],
                    "default_payment_method": request.payment_method_id,
                    "payment_behavior": "default_incomplete",
                    "metadata": {
                        "user_id": request.user_id,
                        "workflow_id": request.workflow_id,
                        # Names the operation, so an outcome-unknown create is found.
                        "operation": operation,
                    },
                },
                {"idempotency_key": key},
            )
            return subscription_snapshot(sub)

        async def find_outcome() -> SubscriptionSnapshot | None:
            listed = await call_stripe(
                "subscriptions.list",
                self.stripe.v1.subscriptions.list_async(
                    {"customer": request.customer_id, "status": "all", "limit": 100}
                ),
            )
            for sub in listed.data:
                snap = subscription_snapshot(sub)
                if snap.metadata.get("operation") == operation:
                    return snap
            return None

        snap = await write_once("subscriptions.create", operation, create, find_outcome)
        log_event(
            logger, "SUBSCRIPTION_CREATED", user_id=request.user_id,
            stripe_subscription_id=snap.subscription_id, price_id=request.price_id,
            status=snap.status,
        )  # fmt: skip
        return snap

    @activity.defn
    async def pay_invoice(self, request: PayInvoiceInput) -> InvoicePaymentResult:
        """Pay an open invoice: paid, requires_action (the customer authenticates on the
        hosted page) or declined. A card error is Stripe's answer, not a failure."""

        async def pay(key: str) -> tuple[str, str | None]:
            params: InvoicePayParams = {}
            if request.payment_method_id is not None:
                params["payment_method"] = request.payment_method_id
            try:
                await self.stripe.v1.invoices.pay_async(
                    request.invoice_id, params, {"idempotency_key": key}
                )
            except stripe.CardError as error:
                if error.code == REQUIRES_ACTION_CODE:
                    return "requires_action", error.user_message
                return "declined", error.user_message or str(error)
            return "paid", None

        async def find_outcome() -> tuple[str, str | None] | None:
            invoice = plain(await self._invoice(request.invoice_id))
            return ("paid", None) if invoice.get("status") == "paid" else None

        try:
            outcome, message = await write_once(
                "invoices.pay", request.idempotency_key, pay, find_outcome
            )
        except ApplicationError as error:
            # Already paid (by the customer on the hosted page, or a retry): Stripe
            # refuses the payment; the invoice says what happened.
            if error.type != errors.STRIPE_INVALID_REQUEST:
                raise
            if (await find_outcome()) is None:
                raise
            outcome, message = "paid", None
        invoice = invoice_snapshot(await self._invoice(request.invoice_id))
        if invoice.status == "paid":
            # A retry answered from Stripe's idempotency memory (a saved 402) while the
            # customer has since paid: the invoice says what is true now.
            outcome, message = "paid", None
        log_event(
            logger, "INVOICE_PAYMENT", invoice_id=request.invoice_id, outcome=outcome,
            status=invoice.status,
        )  # fmt: skip
        return InvoicePaymentResult(
            outcome=outcome,
            invoice=invoice,
            message=message,
        )

    @activity.defn
    async def change_subscription_price(self, request: ChangePriceInput) -> SubscriptionSnapshot:
        """The subscription's own payment method pays (nothing is attached); with
        `pending_if_incomplete` Stripe applies the new price only once its invoice is
        paid, so a decline or a pending authentication keeps the old plan."""
        current = await self._subscription(request.subscription_id)
        item_id = plain(current)["items"]["data"][0]["id"]

        async def update(key: str) -> SubscriptionSnapshot:
            # Only parameters that pending updates accept (Stripe's pending updates
            # reference): no `cancel_at_period_end`, no metadata.
            sub = await self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {
                    "items": [{"id": item_id, "price": request.price_id}],
                    "proration_behavior": request.proration_behavior,
                    "payment_behavior": "pending_if_incomplete",
                },
                {"idempotency_key": key},
            )
            return subscription_snapshot(sub)

        async def find_outcome() -> SubscriptionSnapshot | None:
            snap = subscription_snapshot(await self._subscription(request.subscription_id))
            if request.price_id in (snap.price_id, snap.pending_price_id):
                return snap
            return None

        return await write_once(
            "subscriptions.update", request.idempotency_key, update, find_outcome
        )

    @activity.defn
    async def cancel_subscription(self, request: CancelSubscriptionInput) -> SubscriptionSnapshot:
        """Cancel now ("delete if present"): an unpaid attempt, or a duplicate."""
        snap = subscription_snapshot(await self._subscription(request.subscription_id))
        if snap.status in ENDED_SUBSCRIPTION_STATUSES:
            return snap

        async def cancel(key: str) -> SubscriptionSnapshot:
            params: SubscriptionCancelParams = {"prorate": True} if request.prorate else {}
            sub = await self.stripe.v1.subscriptions.cancel_async(
                request.subscription_id, params, {"idempotency_key": key}
            )
            return subscription_snapshot(sub)

        async def find_outcome() -> SubscriptionSnapshot | None:
            again = subscription_snapshot(await self._subscription(request.subscription_id))
            return again if again.status in ENDED_SUBSCRIPTION_STATUSES else None

        ended = await write_once(
            "subscriptions.cancel", request.idempotency_key, cancel, find_outcome
        )
        log_event(
            logger, "SUBSCRIPTION_CANCELED", stripe_subscription_id=request.subscription_id,
            prorate=request.prorate,
        )  # fmt: skip
        return ended

    @activity.defn
    async def set_cancel_at_period_end(
        self, request: SetCancelAtPeriodEndInput
    ) -> SubscriptionSnapshot:
        async def update(key: str) -> SubscriptionSnapshot:
            sub = await self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {"cancel_at_period_end": request.cancel_at_period_end},
                {"idempotency_key": key},
            )
            return subscription_snapshot(sub)

        async def find_outcome() -> SubscriptionSnapshot | None:
            snap = subscription_snapshot(await self._subscription(request.subscription_id))
            return snap if snap.cancel_at_period_end == request.cancel_at_period_end else None

        return await write_once(
            "subscriptions.update", request.idempotency_key, update, find_outcome
        )

    @activity.defn
    async def set_subscription_payment_method(
        self, request: SetSubscriptionPaymentMethodInput
    ) -> SubscriptionSnapshot:
        async def update(key: str) -> SubscriptionSnapshot:
            sub = await self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {"default_payment_method": request.payment_method_id},
                {"idempotency_key": key},
            )
            return subscription_snapshot(sub)

        async def find_outcome() -> SubscriptionSnapshot | None:
            snap = subscription_snapshot(await self._subscription(request.subscription_id))
            return snap if snap.default_payment_method_id == request.payment_method_id else None

        return await write_once(
            "subscriptions.update", request.idempotency_key, update, find_outcome
        )
