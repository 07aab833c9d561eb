"""Checkout → payment → provisioning: `checkout-<user>` (SPEC 3.3).

One run per checkout attempt. The API starts it with update-with-start
(`start_checkout`): ensure the Stripe customer, create the Checkout Session and answer
its URL; a second call for the same plan gets the open session, another plan expires it
and gets a new one. Then the run waits for Stripe's `checkout.session.*` events (and
for the user's return through `success_url`) — triggers only: the session is always
re-read from Stripe, events about another session are ignored, repeats are dropped. If
nothing arrives within `reconcile_after_seconds`, it re-reads the session anyway, with
backoff, so a broken webhook setup delays a checkout but never strands it. Each re-read
brings the session's subscription and latest invoice: a complete session with an
unsettled payment never says "failed", they do. A re-read Stripe refuses (for however
long, whatever the error) leaves the run waiting with the step shown as stuck.

Paid: hand the subscription to `subscription-<user>` (the only writer of subscriptions
and tiers), then provision: workspace, set-password token (its id only), welcome email.
A permanent failure undoes the provisioning steps, records `failed` and waits for an
operator's `retry_provisioning`. Every state change is written to Postgres by an
activity; the setup status is read from there. The run ends when the email is sent, or
when the session expires or its delayed payment fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import errors, policies, search_attributes
from workflows.contracts.checkout import (
    CHECKOUT_RETURN_SIGNAL,
    CHECKOUT_WORKFLOW,
    RETRY_PROVISIONING_UPDATE,
    START_CHECKOUT_UPDATE,
    CheckoutConfig,
    CheckoutReturnSignal,
    CheckoutSessionSnapshot,
    CheckoutStarted,
    CheckoutStatus,
    CheckoutWorkflowInput,
    CreateCheckoutSessionInput,
    ExpireCheckoutSessionInput,
    HandOverInput,
    IssuePasswordTokenInput,
    PaidSubscriptionCheck,
    PaymentOutcome,
    PaymentState,
    ProvisioningState,
    ProvisioningStepInput,
    RecordCheckoutSessionInput,
    RecordCheckoutStateInput,
    RetryProvisioningRequest,
    RetryProvisioningResult,
    SendWelcomeEmailInput,
    SessionStatus,
    StartCheckoutRequest,
)
from workflows.contracts.common import (
    STRIPE_EVENT_SIGNAL,
    ReadStripeObjectInput,
    SendEmailInput,
    StripeEventSignal,
    UserRef,
)
from workflows.contracts.onboarding import TokenRef
from workflows.ensure import ensure_stripe_customer
from workflows.local_steps import database_step, email_step, stripe_read_step

with workflow.unsafe.imports_passed_through():
    from activities.checkout import CheckoutActivities
    from activities.email import EmailActivities
    from activities.provisioning import ProvisioningActivities
    from activities.stripe_checkout import StripeCheckoutActivities

# Runs recorded before the welcome email went through the one email activity sent it
# through `send_welcome_email` (now the same send under its former name).
ONE_EMAIL_ACTIVITY_PATCH = "one-email-activity"

# The hand-over waits for `subscription-<user>`, which itself calls Stripe.
HAND_OVER: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2),
    "schedule_to_close_timeout": timedelta(hours=12),
    "retry_policy": policies.RETRY,
    "heartbeat_timeout": policies.HEARTBEAT_TIMEOUT,
}

HANDLED_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
# A run started without a `start_checkout` update (by hand) gives up after this long.
_FIRST_UPDATE_WAIT = timedelta(hours=1)


@workflow.defn(name=CHECKOUT_WORKFLOW)
class CheckoutWorkflow:
    @workflow.init
    def __init__(self, request: CheckoutWorkflowInput) -> None:
        self._user_id = request.user_id
        self._lock = asyncio.Lock()
        self._config: CheckoutConfig | None = None
        self._status = CheckoutStatus(user_id=request.user_id)
        self._session: CheckoutSessionSnapshot | None = None
        # The Stripe customer saved for the user when the session was created: a re-read
        # session (and its subscription) is applied only when it is this customer's.
        self._customer_id: str | None = None
        self._async_failed: set[str] = set()
        self._wake = False
        # Paid or ending: no further `start_checkout` in this run.
        self._closed_reason: str | None = None
        self._starts_seen = 0
        self._starts_running = 0
        self._retry_requested = False

    # --- queries, signals, updates ---------------------------------------------------

    @workflow.query
    def status(self) -> CheckoutStatus:
        return self._status

    @workflow.signal(name=STRIPE_EVENT_SIGNAL)
    def stripe_event(self, event: StripeEventSignal) -> None:
        if event.event_id in self._status.applied_event_ids:
            return
        self._status.applied_event_ids.append(event.event_id)
        if event.type not in HANDLED_EVENTS:
            return
        if self._session is None or event.object_id != self._session.session_id:
            # A late event about an earlier session of this user changes nothing.
            workflow.logger.info(
                "CHECKOUT_EVENT_IGNORED",
                extra={"event_id": event.event_id, "checkout_session_id": event.object_id},
            )
            return
        if event.type == "checkout.session.async_payment_failed":
            self._async_failed.add(event.object_id)
        self._wake = True

    @workflow.signal(name=CHECKOUT_RETURN_SIGNAL)
    def checkout_returned(self, request: CheckoutReturnSignal) -> None:
        if self._session is not None and request.session_id == self._session.session_id:
            self._wake = True

    @workflow.update(name=START_CHECKOUT_UPDATE)
    async def start_checkout(self, request: StartCheckoutRequest) -> CheckoutStarted:
        self._starts_seen += 1
        self._starts_running += 1
        try:
            config = await self._ready()
            async with self._lock:
                try:
                    return await self._start(config, request)
                except ActivityError as error:
                    raise _as_update_failure(error) from None
        finally:
            self._starts_running -= 1

    @start_checkout.validator
    def _validate_start(self, request: StartCheckoutRequest) -> None:
        self._refuse_if_closed()

    @workflow.update(name=RETRY_PROVISIONING_UPDATE)
    async def retry_provisioning(
        self, request: RetryProvisioningRequest
    ) -> RetryProvisioningResult:
        workflow.logger.info(
            "PROVISIONING_RETRY_REQUESTED", extra={"user_id": self._user_id, "who": request.who}
        )
        self._retry_requested = True
        return RetryProvisioningResult(
            workflow_id=workflow.info().workflow_id, provisioning_state="queued"
        )

    @retry_provisioning.validator
    def _validate_retry(self, request: RetryProvisioningRequest) -> None:
        if self._status.provisioning_state != "failed" or self._retry_requested:
            raise ApplicationError(
                f"provisioning is {self._status.provisioning_state}, not failed",
                type=errors.PROVISIONING_NOT_FAILED,
                non_retryable=True,
            )

    # --- the run ----------------------------------------------------------------------

    @workflow.run
    async def run(self, request: CheckoutWorkflowInput) -> CheckoutStatus:
        self._config = await database_step(CheckoutActivities.checkout_config)
        self._set_attributes()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: (
                    self._session is not None
                    or (self._starts_seen > 0 and self._starts_running == 0)
                ),
                timeout=_FIRST_UPDATE_WAIT,
            )
        if self._session is None:
            # The first start failed (a 502 to the client): nothing was created.
            self._closed_reason = "no session"
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self._status

        outcome = await self._wait_for_payment(self._config)
        if outcome != "paid":
            await workflow.wait_condition(workflow.all_handlers_finished)
            return self._status
        await self._provision(self._config)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    async def _ready(self) -> CheckoutConfig:
        await workflow.wait_condition(lambda: self._config is not None)
        assert self._config is not None
        return self._config

    def _refuse_if_closed(self) -> None:
        if self._closed_reason == "paid":
            raise ApplicationError(
                "this checkout is paid; change plans through the subscription",
                type=errors.CHECKOUT_CONFLICT,
                non_retryable=True,
            )
        if self._closed_reason is not None:
            raise ApplicationError(
                f"this checkout run is ending ({self._closed_reason}); start a new one",
                type=errors.CHECKOUT_CLOSED,
                non_retryable=True,
            )

    async def _start(
        self, config: CheckoutConfig, request: StartCheckoutRequest
    ) -> CheckoutStarted:
        self._refuse_if_closed()
        workflow_id = workflow.info().workflow_id
        operation = workflow.current_update_info()
        operation_id = operation.id if operation is not None else workflow.info().run_id
        current = self._session
        if current is not None and current.status == "complete":
            # Stripe holds a payment for this session (a delayed method still settling):
            # another session would start a second subscription beside it.
            raise ApplicationError(
                "the current checkout's payment is still confirming; wait for its outcome",
                type=errors.CHECKOUT_CONFLICT,
                non_retryable=True,
            )
        if current is not None and current.status == "open":
            if (self._status.tier, self._status.billing_cycle) == (
                request.tier,
                request.billing_cycle,
            ):
                return self._started(current)
            expired = await workflow.execute_activity_method(
                StripeCheckoutActivities.expire_checkout_session,
                ExpireCheckoutSessionInput(
                    session_id=current.session_id,
                    idempotency_key=f"{workflow_id}/{operation_id}/expire_session",
                ),
                **policies.STRIPE_WRITE,
            )
            if expired.status != "expired":
                # Paid meanwhile: this run goes on to provisioning, nothing new is created.
                self._wake = True
                raise ApplicationError(
                    "the open checkout was just completed; change plans through the subscription",
                    type=errors.CHECKOUT_CONFLICT,
                    non_retryable=True,
                )
        paid: PaidSubscriptionCheck = await database_step(
            CheckoutActivities.check_paid_subscription, UserRef(user_id=self._user_id)
        )
        if paid.has_paid_subscription:
            raise ApplicationError(
                paid.reason or "the user has a subscription; change plans through it",
                type=errors.CHECKOUT_CONFLICT,
                non_retryable=True,
            )
        price = config.prices.get(f"{request.tier}_{request.billing_cycle}")
        if price is None:
            raise ApplicationError(
                f"no Stripe price configured for {request.tier} {request.billing_cycle}",
                type=errors.PRICE_NOT_CONFIGURED,
                non_retryable=True,
            )
        customer = await ensure_stripe_customer(self._user_id)
        session: CheckoutSessionSnapshot = await workflow.execute_activity_method(
            StripeCheckoutActivities.create_checkout_session,
            CreateCheckoutSessionInput(
                user_id=self._user_id,
                workflow_id=workflow_id,
                customer_id=customer.stripe_id,
                price_id=price,
                success_url=config.success_url,
                cancel_url=config.cancel_url,
                idempotency_key=f"{workflow_id}/{operation_id}/create_session",
            ),
            **policies.STRIPE_WRITE,
        )
        try:
            await database_step(
                CheckoutActivities.record_checkout_session,
                RecordCheckoutSessionInput(
                    run_id=workflow.info().run_id,
                    workflow_id=workflow_id,
                    user_id=self._user_id,
                    tier=request.tier,
                    billing_cycle=request.billing_cycle,
                    session_id=session.session_id,
                    session_url=session.url,
                ),
            )
        except ActivityError:
            # Nothing half-done: a session nobody can see must not stay payable.
            await workflow.execute_activity_method(
                StripeCheckoutActivities.expire_checkout_session,
                ExpireCheckoutSessionInput(
                    session_id=session.session_id,
                    idempotency_key=f"{workflow_id}/{operation_id}/expire_unrecorded",
                ),
                **policies.STRIPE_WRITE,
            )
            raise
        self._session = session
        self._customer_id = customer.stripe_id
        self._status.session_id = session.session_id
        self._status.tier = request.tier
        self._status.billing_cycle = request.billing_cycle
        self._status.payment_state = "unpaid"
        return self._started(session)

    def _started(self, session: CheckoutSessionSnapshot) -> CheckoutStarted:
        return CheckoutStarted(
            checkout_session_id=session.session_id,
            url=session.url or "",
            workflow_id=workflow.info().workflow_id,
        )

    # --- payment -----------------------------------------------------------------------

    async def _wait_for_payment(self, config: CheckoutConfig) -> str:
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
            async with self._lock:
                assert self._session is not None
                try:
                    snapshot: CheckoutSessionSnapshot = await stripe_read_step(
                        StripeCheckoutActivities.retrieve_checkout_session,
                        ReadStripeObjectInput(stripe_id=self._session.session_id),
                        _reread_options(config),
                    )
                except ActivityError as error:
                    self._stuck("reread_session", error)
                    interval = min(interval * 2, config.reconcile_max_seconds)
                    continue
                self._unstuck("reread_session")
                outcome = await self._apply(snapshot)
                if outcome != "open" and outcome != "confirming":
                    # Decided: no `start_checkout` may replace the session any more.
                    self._closed_reason = outcome
            if outcome in ("paid", "expired", "failed"):
                return outcome
            if woke:
                interval = config.reconcile_after_seconds
            else:
                interval = min(interval * 2, config.reconcile_max_seconds)

    def _stuck(self, step: str, error: ActivityError) -> None:
        status = self._status
        if status.stuck_step != step:
            status.stuck_step = step
            status.stuck_since = workflow.now()
            status.stuck_attempts = 0
        status.stuck_attempts += 1
        status.stuck_error = _message(error)
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

    async def _apply(self, snapshot: CheckoutSessionSnapshot) -> str:
        """Record what the re-read session shows; returns open/confirming/paid/expired/failed."""
        assert self._session is not None
        if snapshot.session_id != self._session.session_id:
            return "open"
        if not self._owned(snapshot):
            return "open"
        self._session = snapshot
        if snapshot.status == "expired":
            await self._record_payment("unpaid", outcome="expired", session_status="expired")
            return "expired"
        if snapshot.status != "complete":
            return "open"
        first_payment = first_payment_outcome(snapshot)
        if snapshot.payment_status in ("paid", "no_payment_required") or first_payment == "paid":
            await self._record_payment(
                "paid", session_status="complete", subscription_id=snapshot.subscription_id
            )
            return "paid"
        if snapshot.session_id in self._async_failed or first_payment == "failed":
            await self._record_payment("unpaid", outcome="failed", session_status="complete")
            return "failed"
        if self._status.payment_state != "confirming":
            await self._record_payment("confirming", session_status="complete")
        return "confirming"

    def _owned(self, snapshot: CheckoutSessionSnapshot) -> bool:
        """Ownership (SPEC 10): the session and its subscription belong to the customer
        saved for the user; anything else is logged (ids only) and ignored."""
        saved = self._customer_id or (self._session.customer_id if self._session else None)
        foreign = [
            customer
            for customer in (snapshot.customer_id, snapshot.subscription_customer_id)
            if customer is not None and customer != saved
        ]
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

    async def _record_payment(
        self,
        state: PaymentState,
        *,
        session_status: SessionStatus,
        outcome: PaymentOutcome | None = None,
        subscription_id: str | None = None,
    ) -> None:
        await database_step(
            CheckoutActivities.record_checkout_state,
            RecordCheckoutStateInput(
                run_id=workflow.info().run_id,
                session_status=session_status,
                payment_state=state,
                payment_outcome=outcome,
                subscription_id=subscription_id,
            ),
        )
        self._status.payment_state = state
        self._status.payment_outcome = outcome
        self._set_attributes()
        workflow.logger.info(
            "CHECKOUT_PAYMENT_STATE",
            extra={"user_id": self._user_id, "payment_state": state, "outcome": outcome},
        )

    # --- provisioning --------------------------------------------------------------------

    async def _provision(self, config: CheckoutConfig) -> None:
        assert self._session is not None
        subscription_id = self._session.subscription_id
        handed_over = False
        await self._record_provisioning("queued", "PROVISIONING_ENQUEUED")
        while True:
            await self._record_provisioning("running", "PROVISIONING_STARTED")
            step = "handover"
            token_id: str | None = None
            try:
                if not handed_over and subscription_id is not None:
                    await workflow.execute_activity_method(
                        CheckoutActivities.hand_over_subscription,
                        HandOverInput(
                            user_id=self._user_id,
                            subscription_id=subscription_id,
                            update_id=f"{workflow.info().workflow_id}/{workflow.info().run_id}/handover",
                        ),
                        **HAND_OVER,
                    )
                    handed_over = True
                step = "workspace"
                await database_step(ProvisioningActivities.create_workspace, self._step())
                step = "password_token"
                token_id = str(workflow.uuid4())
                await database_step(
                    ProvisioningActivities.issue_password_token,
                    IssuePasswordTokenInput(
                        user_id=self._user_id,
                        run_id=workflow.info().run_id,
                        token_id=token_id,
                        ttl_seconds=config.password_token_ttl_seconds,
                    ),
                )
                step = "welcome_email"
                await self._send_welcome_email(str(workflow.uuid4()), token_id)
            except ActivityError as error:
                await self._undo(step, token_id)
                self._status.last_error = f"{step}: {_message(error)}"
                await self._record_provisioning(
                    "failed", "PROVISIONING_FAILED", error=self._status.last_error
                )
                await workflow.wait_condition(lambda: self._retry_requested)
                self._retry_requested = False
                await self._record_provisioning("queued", "PROVISIONING_ENQUEUED")
                continue
            await self._record_provisioning("completed", "PROVISIONING_COMPLETED", email_sent=True)
            return

    async def _send_welcome_email(self, outbox_id: str, token_id: str) -> None:
        """Through the one email activity; runs recorded before it used the welcome
        email's own activity (the same send, by its former name)."""
        if workflow.patched(ONE_EMAIL_ACTIVITY_PATCH):
            await email_step(
                EmailActivities.send_email,
                SendEmailInput(
                    outbox_id=outbox_id,
                    template="welcome",
                    user_id=self._user_id,
                    refs={"token_id": token_id},
                ),
            )
        else:
            await email_step(
                EmailActivities.send_welcome_email,
                SendWelcomeEmailInput(
                    outbox_id=outbox_id, user_id=self._user_id, token_id=token_id
                ),
            )

    async def _undo(self, failed_step: str, token_id: str | None) -> None:
        """Reverse order; each undo is "remove if present" (the handover is not undone:
        the subscription is paid and belongs to `subscription-<user>`)."""
        if failed_step == "handover":
            return
        if token_id is not None:
            await database_step(
                ProvisioningActivities.revoke_password_token, TokenRef(token_id=token_id)
            )
        await database_step(ProvisioningActivities.delete_workspace, self._step())

    def _step(self) -> ProvisioningStepInput:
        return ProvisioningStepInput(user_id=self._user_id, run_id=workflow.info().run_id)

    async def _record_provisioning(
        self,
        state: ProvisioningState,
        log: str,
        *,
        error: str | None = None,
        email_sent: bool = False,
    ) -> None:
        # The workflow's own state first: once a client can read `failed` from Postgres,
        # an operator's retry must be accepted.
        self._status.provisioning_state = state
        if email_sent:
            self._status.password_state = "sent"  # noqa: S105 - a state, not a secret
        await database_step(
            CheckoutActivities.record_checkout_state,
            RecordCheckoutStateInput(
                run_id=workflow.info().run_id,
                provisioning_state=state,
                provisioning_error=error,
                password_state="sent" if email_sent else None,
            ),
        )
        self._set_attributes()
        extra = {"user_id": self._user_id, "workflow_id": workflow.info().workflow_id}
        if error is not None:
            workflow.logger.error(log, extra={**extra, "error": error})
        else:
            workflow.logger.info(log, extra=extra)

    def _set_attributes(self) -> None:
        if self._config is None or not self._config.search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.PAYMENT_STATE.value_set(self._status.payment_state),
                search_attributes.PROVISIONING_STATE.value_set(self._status.provisioning_state),
            ]
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


def first_payment_outcome(snapshot: CheckoutSessionSnapshot) -> str | None:
    """The first payment's outcome as the session's subscription and latest invoice
    show it: "paid", "failed", or None while it may still settle.

    A complete session whose payment is unsettled says `payment_status=unpaid` whatever
    happens next; Stripe records the outcome on the subscription and its first invoice.
    Paid: the invoice is paid and the subscription `active`/`trialing`. Failed: Stripe
    ended the subscription (`incomplete_expired` 23 h after an unpaid first invoice, or
    `canceled`), marked it `past_due`/`unpaid`, or voided or wrote off the invoice.
    """
    subscription, invoice = snapshot.subscription_status, snapshot.invoice_status
    if invoice == "paid" and subscription in ("active", "trialing"):
        return "paid"
    if subscription in ("incomplete_expired", "canceled", "past_due", "unpaid"):
        return "failed"
    if invoice in ("void", "uncollectible"):
        return "failed"
    return None


def _message(error: ActivityError) -> str:
    cause = error.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause or error)


def _as_update_failure(error: ActivityError) -> ApplicationError:
    """An activity failure as the update's typed failure (the API maps the type)."""
    cause = error.cause
    error_type = cause.type if isinstance(cause, ApplicationError) else None
    return ApplicationError(
        _message(error), type=error_type or errors.STRIPE_UNAVAILABLE, non_retryable=True
    )
