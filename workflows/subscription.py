"""`subscription-<user>`: the one writer of a user's subscription, tiers and invoices.

An entity workflow (SPEC 3.4). Plan changes arrive as updates (each with a validator
that refuses impossible requests before anything is written), Stripe events as the
signal `STRIPE_EVENT_SIGNAL`. Handlers that await activities hold one lock, so an API
call, a checkout hand-over and a webhook for the same user never interleave. Events
are triggers: the subscription or invoice is re-read from Stripe, and each event id
is applied once (the ids travel across continue-as-new). The tier is decided by one
pure function (`subscription_state.compute_tier`) on every path: update, event, timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts import (
        ADMIN_OVERRIDE_UPDATE,
        CANCEL_UPDATE,
        CHECKOUT_HANDOVER_UPDATE,
        DEFAULT_PAYMENT_METHOD,
        DOWNGRADE_UPDATE,
        REACTIVATE_UPDATE,
        STRIPE_EVENT_SIGNAL,
        SUBSCRIPTION_WORKFLOW,
        UPDATE_PAYMENT_METHOD_UPDATE,
        UPGRADE_UPDATE,
        AdminOverrideRequest,
        AttachPaymentMethodInput,
        BillingConfig,
        ChangePriceInput,
        CheckoutHandoverRequest,
        CreateSubscriptionInput,
        DowngradeRequest,
        EmailTemplate,
        EmptyRequest,
        InvoiceSnapshot,
        PaymentMethodRequest,
        ReadStripeObjectInput,
        RecordBillingInput,
        RecordInvoiceInput,
        SendEmailInput,
        SetCancelAtPeriodEndInput,
        SetDefaultPaymentMethodInput,
        SetSubscriptionPaymentMethodInput,
        StripeEventSignal,
        SubscriptionSnapshot,
        SubscriptionState,
        SubscriptionView,
        SubscriptionWorkflowInput,
        TierAudit,
        UpgradeRequest,
    )
from workflows import errors, policies, search_attributes
from workflows.ensure import ensure_stripe_customer
from workflows.local_steps import database_step, stripe_read_step
from workflows.subscription_state import (
    TIER_RANK,
    ReReads,
    adopts,
    apply_snapshot,
    billing_record,
    compute_tier,
    remember_event,
)

# Since this patch, one re-read answers every event about an object that arrived before
# it began (`ReReads`).
COALESCED_REREADS_PATCH = "coalesced-rereads"

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


@workflow.defn(name=SUBSCRIPTION_WORKFLOW)
class SubscriptionWorkflow:
    @workflow.init
    def __init__(self, request: SubscriptionWorkflowInput) -> None:
        self._state = request.state or SubscriptionState(user_id=request.user_id)
        self._lock = asyncio.Lock()
        self._config: BillingConfig | None = None
        self._handled = 0
        self._wake = False
        self._pending_emails: list[tuple[EmailTemplate, dict[str, str]]] = []
        self._rereads = ReReads()

    # --- the run: a timer for the grace period, continue-as-new ------------------------

    @workflow.run
    async def run(self, request: SubscriptionWorkflowInput) -> None:
        config: BillingConfig = await database_step(BillingActivities.billing_config)
        self._config = config
        self._upsert_search_attributes()
        while True:
            self._wake = False
            try:
                await workflow.wait_condition(
                    lambda: self._wake or self._should_continue_as_new(),
                    timeout=self._grace_timeout(),
                )
            except TimeoutError:
                await self._expire_grace()
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

    def _grace_timeout(self) -> timedelta | None:
        state = self._state
        if state.status != "past_due" or state.grace_until is None:
            return None
        if state.grace_expired_notified:
            return None
        return max(state.grace_until - workflow.now(), timedelta(seconds=1))

    async def _expire_grace(self) -> None:
        emails: list[tuple[EmailTemplate, dict[str, str]]] = []
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
                    extra={"user_id": state.user_id, "error": str(error.cause or error)},
                )
        if not emails:
            # Not recorded: the loop's timer fires again; do not spin meanwhile.
            await workflow.sleep(timedelta(minutes=1))
            return
        await self._send_emails(emails)

    # --- queries ------------------------------------------------------------------------

    @workflow.query
    def status(self) -> SubscriptionState:
        return self._state

    # --- Stripe events ------------------------------------------------------------------

    @workflow.signal(name=STRIPE_EVENT_SIGNAL)
    async def stripe_event(self, event: StripeEventSignal) -> None:
        if event.event_id in self._state.applied_event_ids:
            return
        arrival = self._rereads.arrive()
        await self._ready()
        emails: list[tuple[EmailTemplate, dict[str, str]]] = []
        async with self._lock:
            if event.event_id in self._state.applied_event_ids:
                return
            try:
                emails = await self._apply_event(event, arrival)
            except ActivityError as error:
                self._rereads.discard()
                # Not remembered: a redelivery or a replay of the event applies it.
                workflow.logger.warning(
                    "SUBSCRIPTION_EVENT_NOT_APPLIED",
                    extra={"event_id": event.event_id, "error": str(error.cause or error)},
                )
                return
            self._rereads.commit()
            remember_event(self._state, event.event_id)
            self._handled += 1
            self._wake = True
        await self._send_emails(emails)

    async def _apply_event(
        self, event: StripeEventSignal, arrival: int
    ) -> list[tuple[EmailTemplate, dict[str, str]]]:
        subscription_id: str | None = None
        if event.type.startswith("invoice."):
            if self._answered(event.object_id, arrival):
                subscription_id = self._rereads.invoice_subscription.get(event.object_id)
            else:
                self._rereads.begin(event.object_id)
                invoice: InvoiceSnapshot = await stripe_read_step(
                    StripeBillingActivities.read_invoice,
                    ReadStripeObjectInput(stripe_id=event.object_id),
                )
                await database_step(
                    BillingActivities.record_invoice,
                    RecordInvoiceInput(user_id=self._state.user_id, invoice=invoice),
                )
                subscription_id = invoice.subscription_id
                self._rereads.invoice_subscription[event.object_id] = subscription_id
        elif event.type.startswith("customer.subscription."):
            subscription_id = event.object_id
        if subscription_id is None or self._answered(subscription_id, arrival):
            return []
        snap = await self._read_subscription(subscription_id)
        return await self._apply(snap, through_stripe_change=False)

    def _answered(self, object_id: str, arrival: int) -> bool:
        """A re-read that began after this event arrived was recorded (`ReReads`); runs
        recorded before coalescing re-read for every event."""
        return self._rereads.answered(object_id, arrival) and workflow.patched(
            COALESCED_REREADS_PATCH
        )

    async def _read_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        self._rereads.begin(subscription_id)
        snap: SubscriptionSnapshot = await stripe_read_step(
            StripeBillingActivities.read_subscription,
            ReadStripeObjectInput(stripe_id=subscription_id),
        )
        self._rereads.subscriptions[subscription_id] = snap
        return snap

    async def _apply(
        self, snap: SubscriptionSnapshot, *, through_stripe_change: bool
    ) -> list[tuple[EmailTemplate, dict[str, str]]]:
        """Record a re-read subscription (if it is the user's); the emails it calls for."""
        if not adopts(self._state, snap):
            return []
        assert self._config is not None
        new, grace_started = apply_snapshot(
            self._state,
            snap,
            self._config,
            workflow.now(),
            through_stripe_change=through_stripe_change,
        )
        await self._write(new)
        if grace_started:
            return [("payment_failed", self._refs())]
        return []

    # --- updates ------------------------------------------------------------------------

    @workflow.update(name=UPGRADE_UPDATE)
    async def upgrade(self, request: UpgradeRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_upgrade(request)
            price = self._price(request.tier, request.billing_cycle)
            customer = await ensure_stripe_customer(self._state.user_id)
            payment_method = await self._attach_payment_method(
                customer.stripe_id, request.payment_method or DEFAULT_PAYMENT_METHOD
            )
            assert self._config is not None
            snap: SubscriptionSnapshot
            if self._state.has_live_subscription:
                assert self._state.stripe_subscription_id is not None
                snap = await workflow.execute_activity_method(
                    StripeBillingActivities.change_subscription_price,
                    ChangePriceInput(
                        subscription_id=self._state.stripe_subscription_id,
                        price_id=price,
                        proration_behavior=self._config.proration_behavior,
                        idempotency_key=self._key("change_price"),
                    ),
                    **policies.STRIPE_WRITE,
                )
            else:
                snap = await workflow.execute_activity_method(
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
            await self._apply_own_change(snap)

        return await self._run_update(change)

    @upgrade.validator
    def _validate_upgrade(self, request: UpgradeRequest) -> None:
        self._check_upgrade(request)

    def _check_upgrade(self, request: UpgradeRequest) -> None:
        state = self._state
        if not state.has_live_subscription or state.price_tier is None:
            return
        if TIER_RANK[request.tier] < TIER_RANK[state.price_tier]:
            raise _refuse(
                f"Cannot upgrade from {state.price_tier} to {request.tier}: use downgrade",
                errors.SUBSCRIPTION_INVALID,
            )
        if (
            request.tier == state.price_tier
            and request.billing_cycle == state.billing_cycle
            and not state.cancel_at_period_end
        ):
            raise _refuse(
                f"The subscription is already {request.tier} ({request.billing_cycle})",
                errors.SUBSCRIPTION_CONFLICT,
            )

    @workflow.update(name=DOWNGRADE_UPDATE)
    async def downgrade(self, request: DowngradeRequest) -> SubscriptionView:
        async def change() -> None:
            self._check_downgrade(request)
            subscription_id = self._state.stripe_subscription_id
            assert subscription_id is not None and self._config is not None
            snap: SubscriptionSnapshot
            if request.tier == "free":
                # Free at period end: the tier drops when Stripe ends the subscription.
                snap = await self._set_cancel_at_period_end(subscription_id, True)
            else:
                cycle = request.billing_cycle or self._state.billing_cycle or "monthly"
                snap = await workflow.execute_activity_method(
                    StripeBillingActivities.change_subscription_price,
                    ChangePriceInput(
                        subscription_id=subscription_id,
                        price_id=self._price(request.tier, cycle),
                        proration_behavior=self._config.proration_behavior,
                        idempotency_key=self._key("change_price"),
                    ),
                    **policies.STRIPE_WRITE,
                )
            await self._apply_own_change(snap)

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
            payment_method = await self._attach_payment_method(
                customer.stripe_id, request.payment_method
            )
            snap = await workflow.execute_activity_method(
                StripeBillingActivities.set_subscription_payment_method,
                SetSubscriptionPaymentMethodInput(
                    subscription_id=subscription_id,
                    payment_method_id=payment_method,
                    idempotency_key=self._key("subscription_payment_method"),
                ),
                **policies.STRIPE_WRITE,
            )
            await self._apply(snap, through_stripe_change=False)

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
            if snap is None or not self._answered(subscription_id, arrival):
                snap = await self._read_subscription(subscription_id)
            if snap.status in ("active", "trialing", "past_due", "incomplete"):
                await self._apply_own_change(snap)
            else:
                await self._apply(snap, through_stripe_change=False)

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

    async def _apply_own_change(self, snap: SubscriptionSnapshot) -> None:
        self._pending_emails.extend(await self._apply(snap, through_stripe_change=True))

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
