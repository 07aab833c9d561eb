"""The updates of `subscription-<user>`: upgrade, downgrade, cancel,
reactivate, a new payment method, an admin override and the checkout's hand-over.
Each has a validator that refuses impossible requests before anything is written,
and the same check again under the lock. A mixin of `SubscriptionWorkflow`.
"""

from __future__ import annotations

from temporalio import workflow

# The contracts pass through the sandbox: the activity modules (passed through) type
# their results with the host's classes, and a sandbox copy of a model would refuse
# an instance of the host's (pydantic validates by class).
with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import (
        UserRef,
    )
    from workflows.contracts.subscription import (
        ADMIN_OVERRIDE_UPDATE,
        CANCEL_UPDATE,
        CHECKOUT_HANDOVER_UPDATE,
        DOWNGRADE_UPDATE,
        OPEN_PAYMENT_METHOD_SETUP_UPDATE,
        PAID_SUBSCRIPTION_STATUSES,
        REACTIVATE_UPDATE,
        UPDATE_PAYMENT_METHOD_UPDATE,
        UPGRADE_UPDATE,
        AdminOverrideRequest,
        CheckoutHandoverRequest,
        CreateSubscriptionInput,
        DowngradeRequest,
        EmptyRequest,
        OpenCheckoutCheck,
        PaymentMethodRequest,
        PaymentMethodSetup,
        PaymentMethodSetupRequest,
        SubscriptionSnapshot,
        SubscriptionView,
        TierAudit,
        UpgradeRequest,
    )
from workflows import errors, failures, idempotency_keys, policies
from workflows.ensure import ensure_stripe_customer
from workflows.local_steps import database_step
from workflows.subscription_payments import SubscriptionPayments
from workflows.subscription_state import (
    TIER_RANK,
    compute_tier,
)

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.stripe_billing import StripeBillingActivities


class SubscriptionUpdates(SubscriptionPayments):
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
                raise failures.refuse(
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
                    idempotency_key=idempotency_keys.operation_key("create_subscription"),
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
                raise failures.refuse(
                    "A new subscription needs a payment method the platform collected; "
                    "without one, send the user through Checkout (POST /v1/checkout)",
                    errors.PAYMENT_METHOD_REQUIRED,
                )
            return
        if state.price_tier is None:
            return  # a price onramp does not know: any configured plan is a change
        if TIER_RANK[request.tier] < TIER_RANK[state.price_tier]:
            raise failures.refuse(
                f"Cannot upgrade from {state.price_tier} to {request.tier}: use downgrade",
                errors.SUBSCRIPTION_INVALID,
            )
        if request.tier == state.price_tier and request.billing_cycle == state.billing_cycle:
            message = f"The subscription is already {request.tier} ({request.billing_cycle})"
            if state.cancel_at_period_end:
                message += "; reactivate it to keep it"
            raise failures.refuse(message, errors.SUBSCRIPTION_CONFLICT)

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
                raise failures.refuse(
                    "The subscription already ends at the period end",
                    errors.SUBSCRIPTION_CONFLICT,
                )
            return
        self._refuse_while_payment_pending()
        current = state.price_tier or "free"
        if TIER_RANK[request.tier] >= TIER_RANK[current]:
            raise failures.refuse(
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
            raise failures.refuse(
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
            raise failures.refuse(
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
            raise failures.refuse("payment_method must be a pm_… id", errors.SUBSCRIPTION_INVALID)

    @workflow.update(name=OPEN_PAYMENT_METHOD_SETUP_UPDATE)
    async def open_payment_method_setup(
        self, request: PaymentMethodSetupRequest
    ) -> PaymentMethodSetup:
        opened: list[PaymentMethodSetup] = []

        async def change() -> None:
            self._check_payment_method_setup(request)
            customer = await ensure_stripe_customer(self._state.user_id)
            self._state.stripe_customer_id = customer.stripe_id
            session = await self._open_setup_session(
                customer.stripe_id, request.success_url, request.cancel_url
            )
            if session.url is None:
                raise failures.refuse(
                    f"Stripe's setup session {session.session_id} is {session.status}",
                    errors.SUBSCRIPTION_CONFLICT,
                )
            opened.append(PaymentMethodSetup(session_id=session.session_id, url=session.url))

        await self._run_update(change)
        return opened[0]

    @open_payment_method_setup.validator
    def _validate_payment_method_setup(self, request: PaymentMethodSetupRequest) -> None:
        self._check_payment_method_setup(request)

    def _check_payment_method_setup(self, request: PaymentMethodSetupRequest) -> None:
        self._require_stripe_billing("change the payment method of")
        for url in (request.success_url, request.cancel_url):
            if not url.startswith(("https://", "http://")):
                message = "The return URLs must be http(s)"
                raise failures.refuse(message, errors.SUBSCRIPTION_INVALID)

    @workflow.update(name=ADMIN_OVERRIDE_UPDATE)
    async def admin_override(self, request: AdminOverrideRequest) -> SubscriptionView:
        async def change() -> None:
            # No Stripe call: a NULL customer stays NULL.
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
            raise failures.refuse("A reason is required", errors.SUBSCRIPTION_INVALID)

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
            raise failures.refuse("subscription_id must be a sub_… id", errors.SUBSCRIPTION_INVALID)
