"""Checkout → payment → provisioning: `checkout-<user>`.

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

from workflows import (
    checkout_state,
    errors,
    failures,
    idempotency_keys,
    policies,
    search_attributes,
)
from workflows.checkout_payment import CheckoutPayment
from workflows.checkout_provisioning import CheckoutProvisioning
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
    PaidSubscriptionCheck,
    RecordCheckoutSessionInput,
    RetryProvisioningRequest,
    RetryProvisioningResult,
    StartCheckoutRequest,
)
from workflows.contracts.common import (
    STRIPE_EVENT_SIGNAL,
    StripeEventSignal,
    UserRef,
)
from workflows.ensure import ensure_stripe_customer
from workflows.local_steps import database_step

with workflow.unsafe.imports_passed_through():
    from activities.checkout import CheckoutActivities
    from activities.stripe_checkout import StripeCheckoutActivities

HANDLED_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
# A run started without a `start_checkout` update (by hand) gives up after this long.
_FIRST_UPDATE_WAIT = timedelta(hours=1)


@workflow.defn(name=CHECKOUT_WORKFLOW)
class CheckoutWorkflow(CheckoutPayment, CheckoutProvisioning):
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
                except failures.STEP_FAILURES as error:
                    raise failures.as_update_failure(error) from None
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
            raise failures.refuse(
                f"provisioning is {self._status.provisioning_state}, not failed",
                errors.PROVISIONING_NOT_FAILED,
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
        refusal = checkout_state.closed_refusal(self._closed_reason)
        if refusal is not None:
            raise failures.refused(refusal)

    async def _start(
        self, config: CheckoutConfig, request: StartCheckoutRequest
    ) -> CheckoutStarted:
        self._refuse_if_closed()
        plan = checkout_state.start_plan(
            self._session,
            (self._status.tier, self._status.billing_cycle),
            (request.tier, request.billing_cycle),
        )
        if isinstance(plan, failures.Refusal):
            raise failures.refused(plan)
        if plan == "reuse":
            assert self._session is not None
            return self._started(self._session)
        if plan == "replace":
            assert self._session is not None
            await self._expire_open_session(self._session)
        paid: PaidSubscriptionCheck = await database_step(
            CheckoutActivities.check_paid_subscription, UserRef(user_id=self._user_id)
        )
        if paid.has_paid_subscription:
            raise failures.refuse(
                paid.reason or "the user has a subscription; change plans through it",
                errors.CHECKOUT_CONFLICT,
            )
        price = checkout_state.price_for(config.prices, request.tier, request.billing_cycle)
        if isinstance(price, failures.Refusal):
            raise failures.refused(price)
        customer = await ensure_stripe_customer(self._user_id)
        session = await self._create_session(config, customer.stripe_id, price, request)
        self._session = session
        self._customer_id = customer.stripe_id
        self._status.session_id = session.session_id
        self._status.tier = request.tier
        self._status.billing_cycle = request.billing_cycle
        self._status.payment_state = "unpaid"
        return self._started(session)

    async def _expire_open_session(self, current: CheckoutSessionSnapshot) -> None:
        """Another plan replaces the open session: it must not stay payable."""
        expired = await workflow.execute_activity_method(
            StripeCheckoutActivities.expire_checkout_session,
            ExpireCheckoutSessionInput(
                session_id=current.session_id,
                idempotency_key=idempotency_keys.operation_key("expire_session"),
            ),
            **policies.STRIPE_WRITE,
        )
        if expired.status != "expired":
            # Paid meanwhile: this run goes on to provisioning, nothing new is created.
            self._wake = True
            raise failures.refuse(
                "the open checkout was just completed; change plans through the subscription",
                errors.CHECKOUT_CONFLICT,
            )

    async def _create_session(
        self,
        config: CheckoutConfig,
        customer_id: str,
        price: str,
        request: StartCheckoutRequest,
    ) -> CheckoutSessionSnapshot:
        """Create the session and record it; a session nobody can see is expired."""
        workflow_id = workflow.info().workflow_id
        session: CheckoutSessionSnapshot = await workflow.execute_activity_method(
            StripeCheckoutActivities.create_checkout_session,
            CreateCheckoutSessionInput(
                user_id=self._user_id,
                workflow_id=workflow_id,
                customer_id=customer_id,
                price_id=price,
                success_url=config.success_url,
                cancel_url=config.cancel_url,
                idempotency_key=idempotency_keys.operation_key("create_session"),
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
        except failures.STEP_FAILURES:
            await workflow.execute_activity_method(
                StripeCheckoutActivities.expire_checkout_session,
                ExpireCheckoutSessionInput(
                    session_id=session.session_id,
                    idempotency_key=idempotency_keys.operation_key("expire_unrecorded"),
                ),
                **policies.STRIPE_WRITE,
            )
            raise
        return session

    def _started(self, session: CheckoutSessionSnapshot) -> CheckoutStarted:
        return CheckoutStarted(
            checkout_session_id=session.session_id,
            url=session.url or "",
            workflow_id=workflow.info().workflow_id,
        )

    def _set_attributes(self) -> None:
        if self._config is None or not self._config.search_attributes:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.PAYMENT_STATE.value_set(self._status.payment_state),
                search_attributes.PROVISIONING_STATE.value_set(self._status.provisioning_state),
            ]
        )
