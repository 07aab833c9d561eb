"""`subscription-<user>`: the one writer of a user's subscription, tiers and invoices.

An entity workflow. Plan changes arrive as updates (each with a validator
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

The class is assembled from mixins by responsibility: `subscription_updates` (the
updates), `subscription_events` (Stripe events), `subscription_payments` (paying and
following a payment) and `subscription_steps` (the steps they share); this module
holds the run loop, its timers and the query.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.subscription import (
        SUBSCRIPTION_WORKFLOW,
        BillingConfig,
        SubscriptionState,
        SubscriptionWorkflowInput,
    )
from workflows import failures
from workflows.local_steps import database_step
from workflows.subscription_events import SubscriptionEvents
from workflows.subscription_state import ReReads, compute_tier
from workflows.subscription_steps import Emails
from workflows.subscription_updates import SubscriptionUpdates

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities


@workflow.defn(name=SUBSCRIPTION_WORKFLOW)
class SubscriptionWorkflow(SubscriptionUpdates, SubscriptionEvents):
    @workflow.init
    def __init__(self, request: SubscriptionWorkflowInput) -> None:
        self._state = request.state or SubscriptionState(user_id=request.user_id)
        self._lock = asyncio.Lock()
        self._config: BillingConfig | None = None
        self._handled = 0
        self._wake = False
        self._pending_emails: Emails = []
        self._rereads = ReReads()

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
            except failures.STEP_FAILURES as error:
                workflow.logger.warning(
                    "SUBSCRIPTION_GRACE_EXPIRY_NOT_RECORDED",
                    extra={"user_id": state.user_id, "error": failures.failure_chain(error)},
                )
        if not emails:
            # Not recorded: the loop's timer fires again; do not spin meanwhile.
            await workflow.sleep(timedelta(minutes=1))
            return
        await self._send_emails(emails)

    @workflow.query
    def status(self) -> SubscriptionState:
        """The whole state: tier, the payment that waits for the customer, and the events
        whose re-read Stripe refuses (with the last error: the stuck step)."""
        return self._state
