"""`subscription-<user>`: the one writer of a user's subscription, tiers and invoices.

An entity workflow (SPEC 3.4). Plan changes arrive as updates (each with a validator
that refuses impossible requests before anything is written), Stripe events as the
signal `STRIPE_EVENT_SIGNAL`. Handlers that await activities hold one lock, so an API
call, a checkout hand-over and a webhook for the same user never interleave. Events
are triggers: the subscription or invoice is re-read from Stripe, and each event id
is applied once (the ids travel across continue-as-new). The tier is decided by one
pure function (`subscription_state.compute_tier`) on every path: update, event, timer.

Payments follow Stripe's SCA model: a new subscription is created `default_incomplete`
with a payment method the platform collected and its first invoice is paid; a price
change keeps the subscription's payment method and uses `pending_if_incomplete`. When
the customer must authenticate, the state holds a `PendingPayment` (`requires_action`,
Stripe's hosted invoice page as next action) until a re-read says paid, failed for good
or expired; the tier follows only what Stripe says is paid.

An event whose re-read Stripe refuses (an outage past the read's budget, a 401/403
after a key rotation, a 400) is never dropped: it waits in `state.pending_events`
(shown by the `status` query, carried across continue-as-new) and the run loop re-reads
it with a doubling, capped wait until Stripe answers. A 404 (the object is gone) is
recorded as ignored with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import (
        STRIPE_EVENT_SIGNAL,
        EmailTemplate,
        ReadStripeObjectInput,
        SendEmailInput,
        StripeEventSignal,
        UserRef,
    )
    from workflows.contracts.subscription import (
        ADMIN_OVERRIDE_UPDATE,
        CANCEL_UPDATE,
        CHECKOUT_HANDOVER_UPDATE,
        DOWNGRADE_UPDATE,
        PAID_SUBSCRIPTION_STATUSES,
        REACTIVATE_UPDATE,
        SUBSCRIPTION_WORKFLOW,
        UPDATE_PAYMENT_METHOD_UPDATE,
        UPGRADE_UPDATE,
        AdminOverrideRequest,
        AttachPaymentMethodInput,
        BillingConfig,
        CancelSubscriptionInput,
        ChangePriceInput,
        CheckoutHandoverRequest,
        CreateSubscriptionInput,
        DowngradeRequest,
        EmptyRequest,
        InvoicePaymentResult,
        InvoiceSnapshot,
        OpenCheckoutCheck,
        PayInvoiceInput,
        PaymentKind,
        PaymentMethodRequest,
        PendingEvent,
        PendingPayment,
        RecordBillingInput,
        RecordInvoiceInput,
        SetCancelAtPeriodEndInput,
        SetDefaultPaymentMethodInput,
        SetSubscriptionPaymentMethodInput,
        SubscriptionSnapshot,
        SubscriptionState,
        SubscriptionView,
        SubscriptionWorkflowInput,
        TierAudit,
        UpgradeRequest,
    )
from workflows import errors, policies, search_attributes
from workflows.ensure import ensure_stripe_customer, read_user
from workflows.local_steps import database_step, stripe_read_step
from workflows.subscription_state import (
    TIER_RANK,
    ReReads,
    apply_snapshot,
    billing_record,
    compute_tier,
    owns,
    remember_event,
    retry_delay,
    second_subscription,
    settle_pending_payment,
)

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.email import EmailActivities
    from activities.stripe_billing import StripeBillingActivities


def _refuse(message: str, error_type: str) -> ApplicationError:
    return ApplicationError(message, type=error_type, non_retryable=True)


def _as_update_failure(error: ActivityError) -> ApplicationError:
    """An activity's failure as the update's failure, keeping its type for the API."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    return ApplicationError(
        f"{error.message}: {cause}", type=errors.STRIPE_UNAVAILABLE, non_retryable=True
    )


_KEEP: object = object()
Emails = list[tuple[EmailTemplate, dict[str, str]]]


def _failure_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _failure_text(error: ActivityError) -> str:
    """The failure and its causes (the last attempt's Stripe error is nested under the
    retry policy's "giving up")."""
    parts: list[str] = []
    current: BaseException | None = error.cause or error
    while current is not None and len(parts) < 3:
        parts.append(str(current))
        nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return " <- ".join(parts)


@workflow.defn(name=SUBSCRIPTION_WORKFLOW)
class SubscriptionWorkflow:
    @workflow.init
    def __init__(self, request: SubscriptionWorkflowInput) -> None:
        self._state = request.state or SubscriptionState(user_id=request.user_id)
        self._lock = asyncio.Lock()
        self._config: BillingConfig | None = None
        self._handled = 0
        self._wake = False
        self._pending_emails: Emails = []
        self._rereads = ReReads()

    # --- the run: timers (grace, pending events, waiting payment), continue-as-new -----

    @workflow.run
    async def run(self, request: SubscriptionWorkflowInput) -> None:
        config: BillingConfig = await database_step(BillingActivities.billing_config)
        self._config = config
        self._upsert_search_attributes()
        while True:
            self._wake = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or self._should_continue_as_new(),
                    timeout=self._next_timer(),
                )
            await self._expire_grace()
            await self._retry_pending_events()
            await self._recheck_payment()
            if self._should_continue_as_new():
                # Drain handlers first: an update accepted by this run finishes here.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    SubscriptionWorkflowInput(user_id=self._state.user_id, state=self._state)
                )

    def _should_continue_as_new(self) -> bool:
        assert self._config is not None
        return (
            self._handled >= self._config.continue_as_new_after
            or workflow.info().is_continue_as_new_suggested()
        )

    def _next_timer(self) -> timedelta | None:
        """The earliest of: the grace period's end, a pending event's next re-read, the
        next re-read of a payment that waits for the customer."""
        state = self._state
        due: list[datetime] = []
        if (
            state.status == "past_due"
            and state.grace_until is not None
            and not state.grace_expired_notified
        ):
            due.append(state.grace_until)
        due.extend(pending.retry_at for pending in state.pending_events)
        if state.pending_payment is not None:
            due.append(state.pending_payment.recheck_at)
        if not due:
            return None
        return max(min(due) - workflow.now(), timedelta(seconds=1))

    async def _expire_grace(self) -> None:
        state = self._state
        if (
            state.status != "past_due"
            or state.grace_until is None
            or state.grace_expired_notified
            or workflow.now() < state.grace_until
        ):
            return
        emails: Emails = []
        async with self._lock:
            state = self._state
            if (
                state.status != "past_due"
                or state.grace_until is None
                or state.grace_expired_notified
                or workflow.now() < state.grace_until
            ):
                return
            new = state.model_copy(deep=True)
            new.grace_expired_notified = True
            new.tier = compute_tier(new, workflow.now())
            try:
                await self._write(new)
                emails.append(("downgraded_after_grace", self._refs()))
            except ActivityError as error:
                workflow.logger.warning(
                    "SUBSCRIPTION_GRACE_EXPIRY_NOT_RECORDED",
                    extra={"user_id": state.user_id, "error": _failure_text(error)},
                )
        if not emails:
            # Not recorded: the loop's timer fires again; do not spin meanwhile.
            await workflow.sleep(timedelta(minutes=1))
            return
        await self._send_emails(emails)

    # --- queries ------------------------------------------------------------------------

    @workflow.query
    def status(self) -> SubscriptionState:
        """The whole state: tier, the payment that waits for the customer, and the events
        whose re-read Stripe refuses (with the last error: the stuck step)."""
        return self._state

    # --- Stripe events ------------------------------------------------------------------

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
        except ActivityError as error:
            self._rereads.discard()
            if _failure_type(error) == errors.STRIPE_OBJECT_MISSING:
                return await self._settle_event(event, [], ignored=_failure_text(error))
            self._keep_pending(event, previous, _failure_text(error))
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
                "retry_at": _iso(pending.retry_at),
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
        payment: PendingPayment | object | None = _KEEP
        if invoice is not None:
            payment = self._payment_after_invoice(event, invoice, snap)
        return await self._apply(snap, through_stripe_change=False, payment=payment)

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
        return _KEEP

    async def _owned(self, customer_id: str, object_id: str) -> bool:
        """Ownership (SPEC 10): the object's customer is the one saved for the user."""
        if self._state.stripe_customer_id is None:
            user = await read_user(self._state.user_id)
            self._state.stripe_customer_id = user.stripe_customer_id
        if owns(self._state, customer_id):
            return True
        # Recorded (a warning with ids only) and ignored: a validly signed event cannot
        # move another customer's invoice or subscription onto this user.
        workflow.logger.warning(
            "STRIPE_OWNERSHIP_MISMATCH",
            extra={
                "user_id": self._state.user_id,
                "object_id": object_id,
                "customer_id": customer_id,
                "saved_customer_id": self._state.stripe_customer_id,
            },
        )
        return False

    def _reread_options(self) -> policies.ActivityOptions:
        """An event's re-read retries within a budget; after it the event waits as
        pending, shown to operators, instead of holding the workflow's lock for an hour.

        It is a regular activity, not a local one: a local activity that keeps failing
        holds its workflow task open, and a query (the operator's view of the stuck
        step) only sees the state of the last completed task."""
        assert self._config is not None
        budget = timedelta(seconds=self._config.reread_budget_seconds)
        return {
            "start_to_close_timeout": min(policies.STRIPE_READ["start_to_close_timeout"], budget),
            "schedule_to_close_timeout": budget,
            "retry_policy": policies.STRIPE_READ["retry_policy"],
            # The read holds the workflow's lock (a hand-over waits behind it): a read
            # whose worker died is retried after the heartbeat timeout, not after its
            # start-to-close.
            "heartbeat_timeout": policies.HEARTBEAT_TIMEOUT,
        }

    async def _read_invoice(self, invoice_id: str) -> InvoiceSnapshot:
        invoice: InvoiceSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.read_invoice,
            ReadStripeObjectInput(stripe_id=invoice_id),
            **self._reread_options(),
        )
        return invoice

    async def _read_subscription(
        self, subscription_id: str, *, for_event: bool = True
    ) -> SubscriptionSnapshot:
        """Re-read a subscription: for an event (or a recheck) as a budgeted regular
        activity; inside an update or a hand-over as a local step (the caller waits)."""
        self._rereads.begin(subscription_id)
        snap: SubscriptionSnapshot
        if for_event:
            snap = await workflow.execute_activity_method(
                StripeBillingActivities.read_subscription,
                ReadStripeObjectInput(stripe_id=subscription_id),
                **self._reread_options(),
            )
        else:
            snap = await stripe_read_step(
                StripeBillingActivities.read_subscription,
                ReadStripeObjectInput(stripe_id=subscription_id),
            )
        self._rereads.subscriptions[subscription_id] = snap
        return snap

    async def _apply(
        self,
        snap: SubscriptionSnapshot,
        *,
        through_stripe_change: bool,
        payment: PendingPayment | object | None = _KEEP,
    ) -> Emails:
        """Record a re-read subscription if it is the user's; the emails it calls for.

        A second live subscription of the user's customer is canceled at once (see
        `second_subscription`), so checkout and API upgrade never bill twice."""
        if not await self._owned(snap.customer_id, snap.subscription_id):
            return []
        decision = second_subscription(self._state, snap)
        if decision == "ignore":
            return []
        if decision == "cancel_other":
            await self._cancel(snap.subscription_id, prorate=snap.status != "incomplete")
            return []
        if decision == "replace_current":
            assert self._state.stripe_subscription_id is not None
            await self._cancel(self._state.stripe_subscription_id, prorate=False)
        assert self._config is not None
        new, grace_started = apply_snapshot(
            self._state,
            snap,
            self._config,
            workflow.now(),
            through_stripe_change=through_stripe_change or decision == "replace_current",
        )
        if payment is not _KEEP:
            assert payment is None or isinstance(payment, PendingPayment)
            new.pending_payment = settle_pending_payment(payment, snap)
        await self._write(new)
        if grace_started:
            return [("payment_failed", self._refs())]
        return []

    async def _cancel(self, subscription_id: str, *, prorate: bool) -> SubscriptionSnapshot:
        """Cancel a subscription now, under a key that names it (stable across runs)."""
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.cancel_subscription,
            CancelSubscriptionInput(
                subscription_id=subscription_id,
                prorate=prorate,
                idempotency_key=f"{workflow.info().workflow_id}/{subscription_id}/cancel",
            ),
            **policies.STRIPE_WRITE,
        )
        workflow.logger.warning(
            "SUBSCRIPTION_SECOND_CANCELED",
            extra={"user_id": self._state.user_id, "stripe_subscription_id": subscription_id},
        )
        return snap

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
            except ActivityError as error:
                self._rereads.discard()
                workflow.logger.warning(
                    "SUBSCRIPTION_PAYMENT_RECHECK_FAILED",
                    extra={"invoice_id": pending.invoice_id, "error": _failure_text(error)},
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

    # --- updates ------------------------------------------------------------------------

    @workflow.update(name=UPGRADE_UPDATE)
    async def upgrade(self, request: UpgradeRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_upgrade(request)
            price = self._price(request.tier, request.billing_cycle)
            customer = await ensure_stripe_customer(self._state.user_id)
            self._state.stripe_customer_id = customer.stripe_id
            subscription_id = self._state.stripe_subscription_id
            if self._state.has_live_subscription:
                assert subscription_id is not None
                if request.payment_method is not None:
                    await self._use_payment_method(
                        customer.stripe_id, subscription_id, request.payment_method
                    )
                await self._change_price(subscription_id, price)
                return
            assert request.payment_method is not None  # the validator refused otherwise
            check: OpenCheckoutCheck = await database_step(
                BillingActivities.open_checkout, UserRef(user_id=self._state.user_id)
            )
            if check.open:
                raise _refuse(
                    "The user's checkout is open: pay it, let it expire, or upgrade through it",
                    errors.CHECKOUT_OPEN,
                )
            if subscription_id is not None and self._state.status == "incomplete":
                # An earlier attempt that was never paid: canceled first, so the user
                # never holds two subscriptions.
                await self._apply_own_change(await self._cancel(subscription_id, prorate=False))
            payment_method = await self._attach_payment_method(
                customer.stripe_id, request.payment_method
            )
            snap: SubscriptionSnapshot = await workflow.execute_activity_method(
                StripeBillingActivities.create_subscription,
                CreateSubscriptionInput(
                    user_id=self._state.user_id,
                    workflow_id=workflow.info().workflow_id,
                    customer_id=customer.stripe_id,
                    price_id=price,
                    payment_method_id=payment_method,
                    idempotency_key=self._key("create_subscription"),
                ),
                **policies.STRIPE_WRITE,
            )
            await self._pay_first_invoice(snap, payment_method, price)

        return await self._run_update(change)

    @upgrade.validator
    def _validate_upgrade(self, request: UpgradeRequest) -> None:
        self._check_upgrade(request)

    def _check_upgrade(self, request: UpgradeRequest) -> None:
        state = self._state
        pending = state.pending_payment
        # Another payment method may replace an unpaid first attempt; anything else
        # waits until Stripe says the pending payment is paid, failed for good or expired.
        if pending is None or pending.kind != "new_subscription" or request.payment_method is None:
            self._refuse_while_payment_pending()
        if not state.has_live_subscription:
            if request.payment_method is None:
                raise _refuse(
                    "A new subscription needs a payment method the platform collected; "
                    "without one, send the user through Checkout (POST /v1/checkout)",
                    errors.PAYMENT_METHOD_REQUIRED,
                )
            return
        if state.price_tier is None:
            return  # a price onramp does not know: any configured plan is a change
        if TIER_RANK[request.tier] < TIER_RANK[state.price_tier]:
            raise _refuse(
                f"Cannot upgrade from {state.price_tier} to {request.tier}: use downgrade",
                errors.SUBSCRIPTION_INVALID,
            )
        if request.tier == state.price_tier and request.billing_cycle == state.billing_cycle:
            message = f"The subscription is already {request.tier} ({request.billing_cycle})"
            if state.cancel_at_period_end:
                message += "; reactivate it to keep it"
            raise _refuse(message, errors.SUBSCRIPTION_CONFLICT)

    def _refuse_while_payment_pending(self) -> None:
        pending = self._state.pending_payment
        if pending is not None:
            raise _refuse(
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
            raise _refuse(result.message or "The card was declined", errors.STRIPE_CARD_ERROR)

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
                idempotency_key=self._key("change_price"),
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
            raise _refuse(
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
                idempotency_key=self._key(f"pay_invoice/{invoice_id}"),
            ),
            **policies.STRIPE_WRITE,
        )
        return result

    @workflow.update(name=DOWNGRADE_UPDATE)
    async def downgrade(self, request: DowngradeRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_downgrade(request)
            subscription_id = self._state.stripe_subscription_id
            assert subscription_id is not None and self._config is not None
            if request.tier == "free":
                # Free at period end: the tier drops when Stripe ends the subscription.
                snap = await self._set_cancel_at_period_end(subscription_id, True)
                await self._apply_own_change(snap)
            else:
                cycle = request.billing_cycle or self._state.billing_cycle or "monthly"
                await self._change_price(subscription_id, self._price(request.tier, cycle))

        return await self._run_update(change)

    @downgrade.validator
    def _validate_downgrade(self, request: DowngradeRequest) -> None:
        self._check_downgrade(request)

    def _check_downgrade(self, request: DowngradeRequest) -> None:
        state = self._state
        self._require_stripe_billing("downgrade")
        if request.tier == "free":
            if state.cancel_at_period_end:
                raise _refuse(
                    "The subscription already ends at the period end",
                    errors.SUBSCRIPTION_CONFLICT,
                )
            return
        self._refuse_while_payment_pending()
        current = state.price_tier or "free"
        if TIER_RANK[request.tier] >= TIER_RANK[current]:
            raise _refuse(
                f"Cannot downgrade from {current} to {request.tier}: use upgrade",
                errors.SUBSCRIPTION_INVALID,
            )

    @workflow.update(name=CANCEL_UPDATE)
    async def cancel(self, request: EmptyRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_cancel(request)
            assert self._state.stripe_subscription_id is not None
            snap = await self._set_cancel_at_period_end(self._state.stripe_subscription_id, True)
            await self._apply_own_change(snap)

        return await self._run_update(change)

    @cancel.validator
    def _validate_cancel(self, request: EmptyRequest) -> None:
        self._check_cancel(request)

    def _check_cancel(self, _: EmptyRequest) -> None:
        self._require_stripe_billing("cancel")
        if self._state.cancel_at_period_end:
            raise _refuse(
                "The subscription is already set to cancel at the period end",
                errors.SUBSCRIPTION_CONFLICT,
            )

    @workflow.update(name=REACTIVATE_UPDATE)
    async def reactivate(self, request: EmptyRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_reactivate(request)
            assert self._state.stripe_subscription_id is not None
            snap = await self._set_cancel_at_period_end(self._state.stripe_subscription_id, False)
            await self._apply_own_change(snap)

        return await self._run_update(change)

    @reactivate.validator
    def _validate_reactivate(self, request: EmptyRequest) -> None:
        self._check_reactivate(request)

    def _check_reactivate(self, _: EmptyRequest) -> None:
        self._require_stripe_billing("reactivate")
        if not self._state.cancel_at_period_end:
            raise _refuse(
                "The subscription is not set to cancel; nothing to reactivate",
                errors.SUBSCRIPTION_CONFLICT,
            )

    @workflow.update(name=UPDATE_PAYMENT_METHOD_UPDATE)
    async def update_payment_method(self, request: PaymentMethodRequest) -> SubscriptionView:
        async def change() -> None:
            self._require_stripe_billing("update payment method of")
            subscription_id = self._state.stripe_subscription_id
            assert subscription_id is not None
            customer = await ensure_stripe_customer(self._state.user_id)
            self._state.stripe_customer_id = customer.stripe_id
            snap = await self._use_payment_method(
                customer.stripe_id, subscription_id, request.payment_method
            )
            self._pending_emails.extend(await self._apply(snap, through_stripe_change=False))

        return await self._run_update(change)

    @update_payment_method.validator
    def _validate_payment_method(self, request: PaymentMethodRequest) -> None:
        self._require_stripe_billing("update payment method of")
        if not request.payment_method.startswith("pm_"):
            raise _refuse("payment_method must be a pm_… id", errors.SUBSCRIPTION_INVALID)

    @workflow.update(name=ADMIN_OVERRIDE_UPDATE)
    async def admin_override(self, request: AdminOverrideRequest) -> SubscriptionView:
        async def change() -> None:
            # No Stripe call: a NULL customer stays NULL (SPEC 3.4).
            new = self._state.model_copy(deep=True)
            new.admin_override_tier = request.tier
            new.admin_override_reason = request.reason
            new.admin_override_by = request.who
            new.admin_override_at = workflow.now()
            new.tier = compute_tier(new, workflow.now())
            audit = TierAudit(
                who=request.who,
                from_tier=self._state.tier,
                to_tier=new.tier,
                reason=request.reason,
            )
            await self._write(new, audit)

        return await self._run_update(change)

    @admin_override.validator
    def _validate_admin_override(self, request: AdminOverrideRequest) -> None:
        if not request.reason.strip():
            raise _refuse("A reason is required", errors.SUBSCRIPTION_INVALID)

    @workflow.update(name=CHECKOUT_HANDOVER_UPDATE)
    async def checkout_handover(self, request: CheckoutHandoverRequest) -> SubscriptionView:
        # The hand-over is a trigger to re-read too: an event's re-read that began while
        # it waited for the lock answers it (the paid subscription is then recorded from
        # that read, as a change made through Stripe).
        arrival = self._rereads.arrive()

        async def change() -> None:
            subscription_id = request.subscription_id
            snap = self._rereads.subscriptions.get(subscription_id)
            if snap is None or not self._rereads.answered(subscription_id, arrival):
                snap = await self._read_subscription(subscription_id, for_event=False)
            # A hand-over of a subscription other than the user's live one is made
            # safe in `_apply`: one of the two is canceled at Stripe at once.
            if snap.status in PAID_SUBSCRIPTION_STATUSES:
                await self._apply_own_change(snap)
            else:
                self._pending_emails.extend(await self._apply(snap, through_stripe_change=False))

        return await self._run_update(change)

    @checkout_handover.validator
    def _validate_checkout_handover(self, request: CheckoutHandoverRequest) -> None:
        if not request.subscription_id.startswith("sub_"):
            raise _refuse("subscription_id must be a sub_… id", errors.SUBSCRIPTION_INVALID)

    # --- shared steps -------------------------------------------------------------------

    async def _run_update(self, change: Callable[[], Awaitable[None]]) -> SubscriptionView:
        """Run one update under the lock; activity failures fail the update, typed."""
        await self._ready()
        emails: list[tuple[EmailTemplate, dict[str, str]]] = []
        async with self._lock:
            self._pending_emails = emails
            try:
                await change()
            except ActivityError as error:
                self._rereads.discard()
                raise _as_update_failure(error) from None
            except BaseException:
                self._rereads.discard()
                raise
            else:
                self._rereads.commit()
            finally:
                self._handled += 1
                self._wake = True
                self._pending_emails = []
        await self._send_emails(emails)
        return self._view()

    async def _apply_own_change(
        self, snap: SubscriptionSnapshot, payment: PendingPayment | object | None = _KEEP
    ) -> None:
        self._pending_emails.extend(
            await self._apply(snap, through_stripe_change=True, payment=payment)
        )

    async def _use_payment_method(
        self, customer_id: str, subscription_id: str, payment_method: str
    ) -> SubscriptionSnapshot:
        """Attach a payment method the platform collected and make it the default of the
        customer and of the subscription (which pays its invoices)."""
        attached = await self._attach_payment_method(customer_id, payment_method)
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.set_subscription_payment_method,
            SetSubscriptionPaymentMethodInput(
                subscription_id=subscription_id,
                payment_method_id=attached,
                idempotency_key=self._key("subscription_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        return snap

    async def _attach_payment_method(self, customer_id: str, payment_method: str) -> str:
        attached: str = await workflow.execute_activity_method(
            StripeBillingActivities.attach_payment_method,
            AttachPaymentMethodInput(
                customer_id=customer_id,
                payment_method=payment_method,
                idempotency_key=self._key("attach_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        await workflow.execute_activity_method(
            StripeBillingActivities.set_default_payment_method,
            SetDefaultPaymentMethodInput(
                customer_id=customer_id,
                payment_method_id=attached,
                idempotency_key=self._key("default_payment_method"),
            ),
            **policies.STRIPE_WRITE,
        )
        return attached

    async def _set_cancel_at_period_end(
        self, subscription_id: str, value: bool
    ) -> SubscriptionSnapshot:
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.set_cancel_at_period_end,
            SetCancelAtPeriodEndInput(
                subscription_id=subscription_id,
                cancel_at_period_end=value,
                idempotency_key=self._key("cancel_at_period_end"),
            ),
            **policies.STRIPE_WRITE,
        )
        return snap

    async def _write(self, new: SubscriptionState, audit: TierAudit | None = None) -> None:
        """Billing row + users.tier (+ audit) in one transaction; the state follows."""
        await database_step(
            BillingActivities.record_billing,
            RecordBillingInput(record=billing_record(new), audit=audit),
        )
        tier_changed = new.tier != self._state.tier
        self._state = new
        self._wake = True
        if tier_changed:
            self._upsert_search_attributes()

    async def _send_emails(self, emails: list[tuple[EmailTemplate, dict[str, str]]]) -> None:
        for template, refs in emails:
            try:
                await workflow.execute_activity_method(
                    EmailActivities.send_email,
                    SendEmailInput(
                        outbox_id=str(workflow.uuid4()),
                        template=template,
                        user_id=self._state.user_id,
                        refs=refs,
                    ),
                    **policies.EMAIL,
                )
            except ActivityError as error:
                workflow.logger.error(
                    "SUBSCRIPTION_EMAIL_FAILED",
                    extra={"template": template, "error": str(error.cause or error)},
                )

    async def _ready(self) -> None:
        """Handlers may run before `run` has read the configuration."""
        await workflow.wait_condition(lambda: self._config is not None)

    def _require_stripe_billing(self, action: str) -> None:
        if not self._state.has_live_subscription:
            raise _refuse(
                f"Cannot {action} subscription without active Stripe billing",
                errors.NO_STRIPE_BILLING,
            )

    def _price(self, tier: str, cycle: str) -> str:
        assert self._config is not None
        price = self._config.prices.get(f"{tier}_{cycle}")
        if price is None:
            raise _refuse(
                f"No Stripe price is configured for {tier} ({cycle})",
                errors.PRICE_NOT_CONFIGURED,
            )
        return price

    def _key(self, step: str) -> str:
        """`<workflow id>/<update id>/<step>` (SPEC 3.0)."""
        update = workflow.current_update_info()
        operation = update.id if update is not None else workflow.info().run_id
        return f"{workflow.info().workflow_id}/{operation}/{step}"

    def _refs(self) -> dict[str, str]:
        refs = {"user_id": self._state.user_id}
        if self._state.stripe_subscription_id:
            refs["subscription_id"] = self._state.stripe_subscription_id
        if self._state.grace_until is not None:
            refs["grace_until"] = _iso(self._state.grace_until)
        return refs

    def _view(self) -> SubscriptionView:
        state = self._state
        return SubscriptionView(
            user_id=state.user_id,
            tier=state.tier,
            status=state.status,
            stripe_subscription_id=state.stripe_subscription_id,
            cancel_at_period_end=state.cancel_at_period_end,
            grace_until=state.grace_until,
            payment_state="requires_action" if state.pending_payment else "settled",
            payment_action_url=(
                state.pending_payment.hosted_invoice_url if state.pending_payment else None
            ),
        )

    def _upsert_search_attributes(self) -> None:
        if self._config is None or not self._config.search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.USER_ID.value_set(self._state.user_id),
                search_attributes.TIER.value_set(self._state.tier),
            ]
        )


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")
