"""The payment half of `checkout-<user>`: wait for Stripe's events (triggers only) or
the user's return, re-read the session, and record what it decides
(`checkout_state.decide_session`) until it is paid, expired or failed.

A re-read Stripe refuses never ends the run: the step is shown as stuck in `status`
and tried again with capped backoff. A mixin of `CheckoutWorkflow`, which is the one
registered workflow; it holds the state these methods read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows import checkout_state, errors, failures, policies
from workflows.checkout_state import SessionOutcome
from workflows.contracts.checkout import (
    CheckoutConfig,
    CheckoutSessionSnapshot,
    CheckoutStatus,
    RecordCheckoutStateInput,
)
from workflows.contracts.common import ReadStripeObjectInput
from workflows.local_steps import database_step, stripe_read_step

with workflow.unsafe.imports_passed_through():
    from activities.checkout import CheckoutActivities
    from activities.stripe_checkout import StripeCheckoutActivities


class CheckoutPayment:
    _user_id: str
    _lock: asyncio.Lock
    _session: CheckoutSessionSnapshot | None
    _customer_id: str | None
    _async_failed: set[str]
    _status: CheckoutStatus
    _wake: bool
    _closed_reason: str | None
    _set_attributes: Callable[[], None]

    async def _wait_for_payment(self, config: CheckoutConfig) -> SessionOutcome:
        """Until the current session is paid, expired or its payment failed.

        A re-read that Stripe keeps refusing (an outage longer than the read's retries,
        a 401/403 after a key rotation, a 400) never ends the run: the step is shown as
        stuck in `status` and tried again after the same capped backoff.
        """
        interval = config.reconcile_after_seconds
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._wake, timeout=timedelta(seconds=interval)
                )
                woke = True
            except TimeoutError:
                woke = False
            self._wake = False
            outcome = await self._reread_session(config)
            if outcome is not None and checkout_state.is_decided(outcome):
                return outcome
            interval = checkout_state.next_reread_interval(
                interval,
                woke=woke and outcome is not None,
                first_seconds=config.reconcile_after_seconds,
                max_seconds=config.reconcile_max_seconds,
            )

    async def _reread_session(self, config: CheckoutConfig) -> SessionOutcome | None:
        """Re-read the session and apply it; None when Stripe refused the re-read."""
        async with self._lock:
            assert self._session is not None
            try:
                snapshot: CheckoutSessionSnapshot = await stripe_read_step(
                    StripeCheckoutActivities.retrieve_checkout_session,
                    ReadStripeObjectInput(stripe_id=self._session.session_id),
                    _reread_options(config),
                )
            except failures.STEP_FAILURES as error:
                self._stuck("reread_session", error)
                return None
            self._unstuck("reread_session")
            outcome = await self._apply(snapshot)
            if checkout_state.is_decided(outcome):
                # Decided: no `start_checkout` may replace the session any more.
                self._closed_reason = outcome
            return outcome

    def _stuck(self, step: str, error: BaseException) -> None:
        status = self._status
        if status.stuck_step != step:
            status.stuck_step = step
            status.stuck_since = workflow.now()
            status.stuck_attempts = 0
        status.stuck_attempts += 1
        status.stuck_error = failures.failure_message(error)
        workflow.logger.warning(
            "CHECKOUT_STEP_STUCK",
            extra={
                "user_id": self._user_id,
                "step": step,
                "attempts": status.stuck_attempts,
                "error": status.stuck_error,
            },
        )

    def _unstuck(self, step: str) -> None:
        status = self._status
        if status.stuck_step != step:
            return
        workflow.logger.info(
            "CHECKOUT_STEP_RECOVERED",
            extra={"user_id": self._user_id, "step": step, "attempts": status.stuck_attempts},
        )
        status.stuck_step = None
        status.stuck_since = None
        status.stuck_attempts = 0
        status.stuck_error = None

    async def _apply(self, snapshot: CheckoutSessionSnapshot) -> SessionOutcome:
        """Record what the re-read session shows."""
        assert self._session is not None
        if snapshot.session_id != self._session.session_id:
            return "open"
        if not self._owned(snapshot):
            return "open"
        self._session = snapshot
        decision = checkout_state.decide_session(
            snapshot,
            async_failed=snapshot.session_id in self._async_failed,
            payment_state=self._status.payment_state,
        )
        if decision.record is not None:
            await self._record_payment(decision.record)
        return decision.outcome

    def _owned(self, snapshot: CheckoutSessionSnapshot) -> bool:
        """Ownership: the session and its subscription belong to the customer
        saved for the user; anything else is logged (ids only) and ignored."""
        saved = self._customer_id or (self._session.customer_id if self._session else None)
        foreign = checkout_state.foreign_customers(snapshot, saved)
        if not foreign:
            return True
        workflow.logger.warning(
            "STRIPE_OWNERSHIP_MISMATCH",
            extra={
                "user_id": self._user_id,
                "object_id": snapshot.session_id,
                "subscription_id": snapshot.subscription_id,
                "customer_id": foreign[0],
                "saved_customer_id": saved,
            },
        )
        return False

    async def _record_payment(self, record: checkout_state.PaymentRecord) -> None:
        await database_step(
            CheckoutActivities.record_checkout_state,
            RecordCheckoutStateInput(
                run_id=workflow.info().run_id,
                session_status=record.session_status,
                payment_state=record.payment_state,
                payment_outcome=record.outcome,
                subscription_id=record.subscription_id,
            ),
        )
        self._status.payment_state = record.payment_state
        self._status.payment_outcome = record.outcome
        self._set_attributes()
        workflow.logger.info(
            "CHECKOUT_PAYMENT_STATE",
            extra={
                "user_id": self._user_id,
                "payment_state": record.payment_state,
                "outcome": record.outcome,
            },
        )


def _reread_options(config: CheckoutConfig) -> policies.ActivityOptions:
    """One re-read retries in the worker for a short while only; past that the run shows
    the step as stuck and tries again after its own capped backoff, so no outage,
    however long, ends the run or hides in an activity's retries."""
    # A local activity's retries are bounded by attempts: its schedule-to-close
    # timeout does not stop retries that wait out their backoff on a timer.
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "schedule_to_close_timeout": timedelta(minutes=5),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(milliseconds=500),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=10),
            maximum_attempts=config.reread_attempts,
            non_retryable_error_types=errors.NON_RETRYABLE,
        ),
    }
