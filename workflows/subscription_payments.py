"""Payments of `subscription-<user>` (Stripe's SCA model): pay a new subscription's
first invoice, pay a price change's invoice, attach the payment method the platform
collected, and follow a payment that waits for the customer (`PendingPayment`) until
a re-read says paid, failed for good or expired. A mixin of `SubscriptionWorkflow`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import (
        ReadStripeObjectInput,
        StripeEventSignal,
    )
    from workflows.contracts.subscription import (
        AttachPaymentMethodInput,
        ChangePriceInput,
        CreateSetupSessionInput,
        InvoicePaymentResult,
        InvoiceSnapshot,
        PayInvoiceInput,
        PaymentKind,
        PendingPayment,
        SetDefaultPaymentMethodInput,
        SetSubscriptionPaymentMethodInput,
        SetupSessionSnapshot,
        SubscriptionSnapshot,
    )
from workflows import errors, failures, idempotency_keys, policies
from workflows.subscription_state import (
    settle_pending_payment,
)
from workflows.subscription_steps import KEEP, Emails, SubscriptionSteps

with workflow.unsafe.imports_passed_through():
    from activities.stripe_billing import StripeBillingActivities
    from activities.stripe_checkout import StripeSetupSessionActivities


class SubscriptionPayments(SubscriptionSteps):
    def _payment_after_invoice(
        self, event: StripeEventSignal, invoice: InvoiceSnapshot, snap: SubscriptionSnapshot
    ) -> PendingPayment | object | None:
        """A re-read invoice ends the waiting payment, or starts one: Stripe says an
        invoice of the user's subscription needs the customer (a renewal, or a change
        made in the dashboard) and the re-read shows it still open."""
        current = self._state.pending_payment
        pending = settle_pending_payment(current, None, invoice)
        if pending is not current:
            return pending
        if (
            pending is None
            and event.type == "invoice.payment_action_required"
            and invoice.status == "open"
            and invoice.subscription_id == snap.subscription_id
        ):
            kind: PaymentKind = "renewal"
            if snap.status == "incomplete":
                kind = "new_subscription"
            elif snap.pending_price_id is not None:
                kind = "price_change"
            return self._pending_payment(
                kind, snap.subscription_id, invoice, snap.pending_price_id or snap.price_id
            )
        return KEEP

    async def _recheck_payment(self) -> None:
        """No event needed: a payment that waits for the customer is re-read on a timer."""
        pending = self._state.pending_payment
        if pending is None or pending.recheck_at > workflow.now():
            return
        emails: Emails = []
        async with self._lock:
            pending = self._state.pending_payment
            if pending is None or pending.recheck_at > workflow.now():
                return
            assert self._config is not None
            try:
                invoice = await self._read_invoice(pending.invoice_id)
                snap = await self._read_subscription(pending.subscription_id)
                payment = settle_pending_payment(pending, snap, invoice)
                if payment is not None:
                    payment = payment.model_copy(
                        update={
                            "recheck_at": workflow.now()
                            + timedelta(seconds=self._config.payment_recheck_seconds)
                        }
                    )
                emails = await self._apply(snap, through_stripe_change=False, payment=payment)
                self._rereads.commit()
            except failures.STEP_FAILURES as error:
                self._rereads.discard()
                workflow.logger.warning(
                    "SUBSCRIPTION_PAYMENT_RECHECK_FAILED",
                    extra={
                        "invoice_id": pending.invoice_id,
                        "error": failures.failure_chain(error),
                    },
                )
                self._state.pending_payment = pending.model_copy(
                    update={
                        "recheck_at": workflow.now()
                        + timedelta(seconds=self._config.retry_max_seconds)
                    }
                )
        await self._send_emails(emails)

    def _pending_payment(
        self,
        kind: PaymentKind,
        subscription_id: str,
        invoice: InvoiceSnapshot,
        price_id: str | None,
    ) -> PendingPayment:
        assert self._config is not None
        now = workflow.now()
        return PendingPayment(
            kind=kind,
            subscription_id=subscription_id,
            invoice_id=invoice.invoice_id,
            hosted_invoice_url=invoice.hosted_invoice_url,
            price_id=price_id,
            since=now,
            recheck_at=now + timedelta(seconds=self._config.payment_recheck_seconds),
        )

    def _refuse_while_payment_pending(self) -> None:
        pending = self._state.pending_payment
        if pending is not None:
            raise failures.refuse(
                "A payment of this subscription waits for the customer's authentication "
                f"at {pending.hosted_invoice_url}",
                errors.PAYMENT_PENDING,
            )

    async def _pay_first_invoice(
        self, snap: SubscriptionSnapshot, payment_method: str, price: str
    ) -> None:
        """Pay the first invoice of a `default_incomplete` subscription: active, or
        waiting for the customer's authentication, or declined (then canceled)."""
        if snap.status != "incomplete" or snap.latest_invoice_id is None:
            await self._apply_own_change(snap)
            return
        result = await self._pay_invoice(snap.latest_invoice_id, payment_method)
        if result.outcome == "paid":
            await self._apply_own_change(
                await self._read_subscription(snap.subscription_id, for_event=False)
            )
        elif result.outcome == "requires_action":
            pending = self._pending_payment(
                "new_subscription", snap.subscription_id, result.invoice, price
            )
            await self._apply_own_change(snap, payment=pending)
        else:
            await self._cancel(snap.subscription_id, prorate=False)
            raise failures.refuse(
                result.message or "The card was declined", errors.STRIPE_CARD_ERROR
            )

    async def _change_price(self, subscription_id: str, price: str) -> None:
        """A price change on the subscription's own payment method; the old plan stays
        until Stripe has the new invoice paid."""
        assert self._config is not None
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.change_subscription_price,
            ChangePriceInput(
                subscription_id=subscription_id,
                price_id=price,
                proration_behavior=self._config.proration_behavior,
                idempotency_key=idempotency_keys.operation_key("change_price"),
            ),
            **policies.STRIPE_WRITE,
        )
        if snap.pending_price_id is None or snap.latest_invoice_id is None:
            await self._apply_own_change(snap)
            return
        # Stripe kept the old price: the new invoice's payment failed or needs the
        # customer. Paying it once more under our own key says which (a decline, or
        # 402 `invoice_payment_intent_requires_action`).
        result = await self._pay_invoice(snap.latest_invoice_id, None)
        if result.outcome == "paid":
            await self._apply_own_change(
                await self._read_subscription(subscription_id, for_event=False)
            )
        elif result.outcome == "requires_action":
            pending = self._pending_payment("price_change", subscription_id, result.invoice, price)
            await self._apply_own_change(snap, payment=pending)
        else:
            raise failures.refuse(
                (result.message or "The card was declined")
                + " (the plan is unchanged; Stripe drops the pending change when it expires)",
                errors.STRIPE_CARD_ERROR,
            )

    async def _pay_invoice(
        self, invoice_id: str, payment_method: str | None
    ) -> InvoicePaymentResult:
        result: InvoicePaymentResult = await workflow.execute_activity_method(
            StripeBillingActivities.pay_invoice,
            PayInvoiceInput(
                invoice_id=invoice_id,
                payment_method_id=payment_method,
                idempotency_key=idempotency_keys.operation_key(f"pay_invoice/{invoice_id}"),
            ),
            **policies.STRIPE_WRITE,
        )
        return result

    async def _use_payment_method(
        self,
        customer_id: str,
        subscription_id: str,
        payment_method: str,
        key: Callable[[str], str] = idempotency_keys.operation_key,
    ) -> SubscriptionSnapshot:
        """Attach a payment method the platform collected and make it the default of the
        customer and of the subscription (which pays its invoices)."""
        attached = await self._attach_payment_method(customer_id, payment_method, key)
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.set_subscription_payment_method,
            SetSubscriptionPaymentMethodInput(
                subscription_id=subscription_id,
                payment_method_id=attached,
                idempotency_key=key("subscription_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        return snap

    async def _attach_payment_method(
        self,
        customer_id: str,
        payment_method: str,
        key: Callable[[str], str] = idempotency_keys.operation_key,
    ) -> str:
        attached: str = await workflow.execute_activity_method(
            StripeBillingActivities.attach_payment_method,
            AttachPaymentMethodInput(
                customer_id=customer_id,
                payment_method=payment_method,
                idempotency_key=key("attach_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        await workflow.execute_activity_method(
            StripeBillingActivities.set_default_payment_method,
            SetDefaultPaymentMethodInput(
                customer_id=customer_id,
                payment_method_id=attached,
                idempotency_key=key("default_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        return attached

    async def _open_setup_session(
        self, customer_id: str, success_url: str, cancel_url: str
    ) -> SetupSessionSnapshot:
        """A Checkout Session in setup mode for the customer (Stripe collects the card)."""
        session: SetupSessionSnapshot = await workflow.execute_activity_method(
            StripeSetupSessionActivities.create_setup_session,
            CreateSetupSessionInput(
                user_id=self._state.user_id,
                workflow_id=workflow.info().workflow_id,
                customer_id=customer_id,
                success_url=success_url,
                cancel_url=cancel_url,
                idempotency_key=idempotency_keys.operation_key("setup_session"),
            ),
            **policies.STRIPE_WRITE,
        )
        return session

    async def _apply_setup_session(self, session_id: str) -> Emails:
        """A completed setup session (`checkout.session.completed`, re-read): its
        SetupIntent's payment method becomes the customer's and the subscription's
        default, under keys naming the session (one change per session)."""
        session: SetupSessionSnapshot = await workflow.execute_activity_method(
            StripeSetupSessionActivities.read_setup_session,
            ReadStripeObjectInput(stripe_id=session_id),
            **self._reread_options(),
        )
        customer_id = session.customer_id
        if customer_id is None or not await self._owned(customer_id, session_id):
            return []
        payment_method = session.payment_method_id
        if session.setup_intent_status != "succeeded" or payment_method is None:
            workflow.logger.info(
                "SETUP_SESSION_NOT_COMPLETE",
                extra={"checkout_session_id": session_id, "status": session.status},
            )
            return []

        def key(step: str) -> str:
            return idempotency_keys.object_key(session_id, step)

        subscription_id = self._state.stripe_subscription_id
        if not self._state.has_live_subscription or subscription_id is None:
            await self._attach_payment_method(customer_id, payment_method, key)
            return []
        snap = await self._use_payment_method(customer_id, subscription_id, payment_method, key)
        return await self._apply(snap, through_stripe_change=False)
