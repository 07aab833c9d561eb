"""Stripe events of `subscription-<user>`: triggers to re-read the subscription or
invoice they name, applied once each. A re-read Stripe refuses keeps the event
pending (shown by `status`, carried across continue-as-new) and the run loop tries it
again with a doubling, capped wait; a 404 records it as ignored with its reason.

Re-reads are coalesced (`ReReads`): a re-read of the same object that began after an
event arrived answers that event too. A mixin of `SubscriptionWorkflow`.
"""

from __future__ import annotations

from temporalio import workflow

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import (
        STRIPE_EVENT_SIGNAL,
        StripeEventSignal,
    )
    from workflows.contracts.subscription import (
        InvoiceSnapshot,
        PendingEvent,
        PendingPayment,
        RecordInvoiceInput,
    )
from workflows import errors, failures
from workflows.local_steps import database_step
from workflows.subscription_payments import SubscriptionPayments
from workflows.subscription_state import (
    remember_event,
    retry_delay,
)
from workflows.subscription_steps import KEEP, Emails, iso

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities


class SubscriptionEvents(SubscriptionPayments):
    @workflow.signal(name=STRIPE_EVENT_SIGNAL)
    async def stripe_event(self, event: StripeEventSignal) -> None:
        if self._known(event.event_id):
            return
        arrival = self._rereads.arrive()
        await self._ready()
        emails: Emails = []
        async with self._lock:
            if self._known(event.event_id):
                return
            emails = await self._handle_event(event, arrival, previous=None)
        await self._send_emails(emails)

    def _known(self, event_id: str) -> bool:
        state = self._state
        return event_id in state.applied_event_ids or any(
            pending.event.event_id == event_id for pending in state.pending_events
        )

    async def _handle_event(
        self, event: StripeEventSignal, arrival: int, previous: PendingEvent | None
    ) -> Emails:
        """Apply one event under the lock; a refused re-read keeps it pending."""
        if not event.object_id:
            return await self._settle_event(event, [], ignored="the event names no object")
        try:
            emails = await self._apply_event(event, arrival)
        except failures.STEP_FAILURES as error:
            self._rereads.discard()
            if failures.failure_type(error) == errors.STRIPE_OBJECT_MISSING:
                return await self._settle_event(event, [], ignored=failures.failure_chain(error))
            self._keep_pending(event, previous, failures.failure_chain(error))
            return []
        self._rereads.commit()
        return await self._settle_event(event, emails)

    async def _settle_event(
        self, event: StripeEventSignal, emails: Emails, *, ignored: str | None = None
    ) -> Emails:
        if ignored is not None:
            workflow.logger.info(
                "SUBSCRIPTION_EVENT_IGNORED",
                extra={"event_id": event.event_id, "type": event.type, "reason": ignored},
            )
        remember_event(self._state, event.event_id)
        self._state.pending_events = [
            pending
            for pending in self._state.pending_events
            if pending.event.event_id != event.event_id
        ]
        self._handled += 1
        self._wake = True
        return emails

    def _keep_pending(
        self, event: StripeEventSignal, previous: PendingEvent | None, error: str
    ) -> None:
        assert self._config is not None
        attempts = previous.attempts + 1 if previous is not None else 1
        pending = PendingEvent(
            event=event,
            attempts=attempts,
            last_error=error,
            retry_at=workflow.now() + retry_delay(self._config, attempts),
        )
        others = [p for p in self._state.pending_events if p.event.event_id != event.event_id]
        self._state.pending_events = [*others, pending]
        self._wake = True
        workflow.logger.warning(
            "SUBSCRIPTION_EVENT_PENDING",
            extra={
                "event_id": event.event_id,
                "type": event.type,
                "attempts": attempts,
                "retry_at": iso(pending.retry_at),
                "error": error,
            },
        )

    async def _retry_pending_events(self) -> None:
        now = workflow.now()
        for pending in list(self._state.pending_events):
            if pending.retry_at > now:
                continue
            arrival = self._rereads.arrive()
            emails: Emails = []
            async with self._lock:
                current = next(
                    (
                        p
                        for p in self._state.pending_events
                        if p.event.event_id == pending.event.event_id
                    ),
                    None,
                )
                if current is None:
                    continue
                emails = await self._handle_event(current.event, arrival, previous=current)
            await self._send_emails(emails)

    async def _apply_event(self, event: StripeEventSignal, arrival: int) -> Emails:
        if event.type == "checkout.session.completed":
            # Only setup-mode sessions are routed here (a new payment method).
            return await self._apply_setup_session(event.object_id)
        subscription_id: str | None = None
        invoice: InvoiceSnapshot | None = None
        if event.type.startswith("invoice."):
            # A payment that needs the customer is learnt from this event's type (with
            # the re-read as proof the invoice is still open), so it is never coalesced.
            needs_action = event.type == "invoice.payment_action_required"
            if not needs_action and self._rereads.answered(event.object_id, arrival):
                subscription_id = self._rereads.invoice_subscription.get(event.object_id)
            else:
                self._rereads.begin(event.object_id)
                invoice = await self._read_invoice(event.object_id)
                if not await self._owned(invoice.customer_id, invoice.invoice_id):
                    return []
                await database_step(
                    BillingActivities.record_invoice,
                    RecordInvoiceInput(user_id=self._state.user_id, invoice=invoice),
                )
                subscription_id = invoice.subscription_id
                self._rereads.invoice_subscription[event.object_id] = subscription_id
        elif event.type.startswith("customer.subscription."):
            subscription_id = event.object_id
        if subscription_id is None:
            return []
        if invoice is None and self._rereads.answered(subscription_id, arrival):
            return []
        snap = await self._read_subscription(subscription_id)
        payment: PendingPayment | object | None = KEEP
        if invoice is not None:
            payment = self._payment_after_invoice(event, invoice, snap)
        return await self._apply(snap, through_stripe_change=False, payment=payment)
