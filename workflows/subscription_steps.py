"""The shared steps of `subscription-<user>`: re-reading a subscription or invoice,
checking that it is the user's, applying it (one pure decision, `subscription_state`),
writing the billing row, canceling a second subscription, running an update under the
lock, sending emails, and the views of the state.

The base of the workflow's mixins; `SubscriptionWorkflow` is the one registered
workflow and holds the state declared here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import (
        EmailTemplate,
        ReadStripeObjectInput,
        SendEmailInput,
    )
    from workflows.contracts.subscription import (
        BillingConfig,
        CancelSubscriptionInput,
        InvoiceSnapshot,
        PendingPayment,
        RecordBillingInput,
        SetCancelAtPeriodEndInput,
        SubscriptionSnapshot,
        SubscriptionState,
        SubscriptionView,
        TierAudit,
    )
from workflows import errors, failures, idempotency_keys, policies, search_attributes
from workflows.ensure import read_user
from workflows.local_steps import database_step, stripe_read_step
from workflows.subscription_state import (
    ReReads,
    apply_snapshot,
    billing_record,
    owns,
    second_subscription,
    settle_pending_payment,
)

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.email import EmailActivities
    from activities.stripe_billing import StripeBillingActivities

KEEP: object = object()  # "leave the waiting payment as it is"
Emails = list[tuple[EmailTemplate, dict[str, str]]]


def iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


class SubscriptionSteps:
    _state: SubscriptionState
    _lock: asyncio.Lock
    _config: BillingConfig | None
    _handled: int
    _wake: bool
    _pending_emails: Emails
    _rereads: ReReads

    async def _owned(self, customer_id: str, object_id: str) -> bool:
        """Ownership: the object's customer is the one saved for the user."""
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
        payment: PendingPayment | object | None = KEEP,
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
        if payment is not KEEP:
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
                idempotency_key=idempotency_keys.object_key(subscription_id, "cancel"),
            ),
            **policies.STRIPE_WRITE,
        )
        workflow.logger.warning(
            "SUBSCRIPTION_SECOND_CANCELED",
            extra={"user_id": self._state.user_id, "stripe_subscription_id": subscription_id},
        )
        return snap

    async def _run_update(self, change: Callable[[], Awaitable[None]]) -> SubscriptionView:
        """Run one update under the lock; activity failures fail the update, typed."""
        await self._ready()
        emails: list[tuple[EmailTemplate, dict[str, str]]] = []
        async with self._lock:
            self._pending_emails = emails
            try:
                await change()
            except failures.STEP_FAILURES as error:
                self._rereads.discard()
                raise failures.as_update_failure(error) from None
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
        self, snap: SubscriptionSnapshot, payment: PendingPayment | object | None = KEEP
    ) -> None:
        self._pending_emails.extend(
            await self._apply(snap, through_stripe_change=True, payment=payment)
        )

    async def _set_cancel_at_period_end(
        self, subscription_id: str, value: bool
    ) -> SubscriptionSnapshot:
        snap: SubscriptionSnapshot = await workflow.execute_activity_method(
            StripeBillingActivities.set_cancel_at_period_end,
            SetCancelAtPeriodEndInput(
                subscription_id=subscription_id,
                cancel_at_period_end=value,
                idempotency_key=idempotency_keys.operation_key("cancel_at_period_end"),
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
            except failures.STEP_FAILURES as error:
                workflow.logger.error(
                    "SUBSCRIPTION_EMAIL_FAILED",
                    extra={"template": template, "error": str(failures.cause_of(error))},
                )

    async def _ready(self) -> None:
        """Handlers may run before `run` has read the configuration."""
        await workflow.wait_condition(lambda: self._config is not None)

    def _require_stripe_billing(self, action: str) -> None:
        if not self._state.has_live_subscription:
            raise failures.refuse(
                f"Cannot {action} subscription without active Stripe billing",
                errors.NO_STRIPE_BILLING,
            )

    def _price(self, tier: str, cycle: str) -> str:
        assert self._config is not None
        price = self._config.prices.get(f"{tier}_{cycle}")
        if price is None:
            raise failures.refuse(
                f"No Stripe price is configured for {tier} ({cycle})",
                errors.PRICE_NOT_CONFIGURED,
            )
        return price

    def _refs(self) -> dict[str, str]:
        refs = {"user_id": self._state.user_id}
        if self._state.stripe_subscription_id:
            refs["subscription_id"] = self._state.stripe_subscription_id
        if self._state.grace_until is not None:
            refs["grace_until"] = iso(self._state.grace_until)
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
