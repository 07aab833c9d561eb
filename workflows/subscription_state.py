"""Pure functions of the subscription state: the tier, and applying a re-read subscription.

No I/O and no clock: callers pass `now` (the workflow's time), so these are unit-tested
directly and every path (update, event, timer) decides the tier the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, cast

from workflows.contracts.common import Tier
from workflows.contracts.subscription import (
    ENDED_SUBSCRIPTION_STATUSES,
    PAID_SUBSCRIPTION_STATUSES,
    BillingConfig,
    BillingRecord,
    InvoiceSnapshot,
    PendingPayment,
    SubscriptionSnapshot,
    SubscriptionState,
)

TIER_RANK: dict[Tier, int] = {"free": 0, "pro": 1, "enterprise": 2}
# Applied event ids kept across continue-as-new: far more than one run handles.
MAX_APPLIED_EVENT_IDS = 5000


def tier_of_price(
    config: BillingConfig, price_id: str | None, lookup_key: str | None
) -> Tier | None:
    """The tier a Stripe price stands for: configuration first, then its lookup key."""
    for name, configured in config.prices.items():
        if configured == price_id:
            return cast(Tier, name.split("_", 1)[0])
    if lookup_key and lookup_key.startswith("onramp_"):
        tier = lookup_key.split("_")[1]
        if tier in ("pro", "enterprise"):
            return cast(Tier, tier)
    return None


def compute_tier(state: SubscriptionState, now: datetime) -> Tier:
    """An admin override holds until the next change made through Stripe;
    otherwise the price's tier while `active`/`trialing`, or `past_due` before
    `grace_until`; `free` in every other case."""
    if state.admin_override_tier is not None:
        return state.admin_override_tier
    if state.stripe_subscription_id is None or state.price_tier is None:
        return "free"
    if state.status in ("active", "trialing"):
        return state.price_tier
    if state.status == "past_due" and state.grace_until is not None and now < state.grace_until:
        return state.price_tier
    return "free"


def owns(state: SubscriptionState, customer_id: str) -> bool:
    """Ownership: a re-read object is applied only when it belongs to the
    customer saved for the user (a subscription moved to, or made for, another customer
    through the dashboard is not this user's billing)."""
    return state.stripe_customer_id is not None and customer_id == state.stripe_customer_id


SecondSubscription = Literal["apply", "ignore", "cancel_other", "replace_current"]


def second_subscription(state: SubscriptionState, snap: SubscriptionSnapshot) -> SecondSubscription:
    """What to do with a re-read subscription of the user's customer, so that a user never
    has two subscriptions billing at once (checkout and API upgrade in any order).

    - the current one, or the first one: apply it;
    - another that has ended: ignore it (an old subscription ending changes nothing);
    - the current one has ended: the other replaces it;
    - both live: the paid one stays (active, trialing, past_due) and the other is
      canceled; when both are paid the one already recorded stays and the other (the
      newer arrival) is canceled, its unused time credited by Stripe's proration.
    """
    current = state.stripe_subscription_id
    if current is None or current == snap.subscription_id:
        return "apply"
    if snap.status in ENDED_SUBSCRIPTION_STATUSES:
        return "ignore"
    if state.status in ENDED_SUBSCRIPTION_STATUSES:
        return "apply"
    current_paid = state.status in PAID_SUBSCRIPTION_STATUSES
    other_paid = snap.status in PAID_SUBSCRIPTION_STATUSES
    if other_paid and not current_paid:
        return "replace_current"
    return "cancel_other"


def settle_pending_payment(
    pending: PendingPayment | None,
    snap: SubscriptionSnapshot | None = None,
    invoice: InvoiceSnapshot | None = None,
) -> PendingPayment | None:
    """The payment that still waits for the customer after a re-read, or None once
    Stripe says it is over: the invoice is no longer open (paid, void, uncollectible),
    the subscription ended, a first invoice's subscription left `incomplete`, a pending
    update was applied or expired, or a renewal's subscription is active again."""
    if pending is None:
        return None
    if (
        invoice is not None
        and invoice.invoice_id == pending.invoice_id
        and invoice.status != "open"
    ):
        return None
    if snap is None or snap.subscription_id != pending.subscription_id:
        return pending
    if snap.status in ENDED_SUBSCRIPTION_STATUSES:
        return None
    if pending.kind == "new_subscription" and snap.status != "incomplete":
        return None
    if pending.kind == "price_change" and snap.pending_price_id is None:
        return None
    if pending.kind == "renewal" and snap.status in ("active", "trialing"):
        return None
    return pending


def retry_delay(config: BillingConfig, attempts: int) -> timedelta:
    """Doubling wait before the next re-read of a pending event, capped."""
    seconds = config.retry_initial_seconds * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, config.retry_max_seconds))


def _differs(state: SubscriptionState, snap: SubscriptionSnapshot) -> bool:
    return (
        state.stripe_subscription_id != snap.subscription_id
        or state.status != snap.status
        or state.stripe_price_id != snap.price_id
        or state.cancel_at_period_end != snap.cancel_at_period_end
    )


def apply_snapshot(
    state: SubscriptionState,
    snap: SubscriptionSnapshot,
    config: BillingConfig,
    now: datetime,
    *,
    through_stripe_change: bool,
) -> tuple[SubscriptionState, bool]:
    """The state after re-reading `snap`; True when a grace period started just now.

    `through_stripe_change` is set when onramp itself changed the subscription (an
    update); a re-read that differs from what was recorded is a change too. Either
    ends an admin override.
    """
    new = state.model_copy(deep=True)
    if through_stripe_change or _differs(state, snap):
        new.admin_override_tier = None
        new.admin_override_reason = None
        new.admin_override_by = None
        new.admin_override_at = None
    new.stripe_subscription_id = snap.subscription_id
    new.subscription_created = snap.created
    new.subscription_item_id = snap.item_id
    new.status = snap.status
    new.stripe_price_id = snap.price_id
    new.price_tier = tier_of_price(config, snap.price_id, snap.price_lookup_key)
    new.billing_cycle = snap.billing_cycle
    new.cancel_at_period_end = snap.cancel_at_period_end
    new.current_period_end = snap.current_period_end
    new.pending_payment = settle_pending_payment(new.pending_payment, snap)
    if (
        new.pending_payment is not None
        and new.pending_payment.subscription_id != snap.subscription_id
    ):
        new.pending_payment = None  # a waiting payment belongs to the current subscription
    grace_started = False
    if snap.status == "past_due":
        if new.grace_until is None:
            new.grace_until = now + timedelta(seconds=config.grace_seconds)
            new.grace_expired_notified = False
            grace_started = True
    else:
        new.grace_until = None
        new.grace_expired_notified = False
    new.tier = compute_tier(new, now)
    return new, grace_started


def remember_event(state: SubscriptionState, event_id: str) -> None:
    state.applied_event_ids.append(event_id)
    if len(state.applied_event_ids) > MAX_APPLIED_EVENT_IDS:
        del state.applied_event_ids[:-MAX_APPLIED_EVENT_IDS]


def billing_record(state: SubscriptionState) -> BillingRecord:
    live = state.stripe_subscription_id is not None
    pending = state.pending_payment
    return BillingRecord(
        user_id=state.user_id,
        tier=state.tier,
        status=state.status if live else "none",
        billing_cycle=state.billing_cycle,
        stripe_subscription_id=state.stripe_subscription_id,
        stripe_price_id=state.stripe_price_id,
        cancel_at_period_end=state.cancel_at_period_end and live,
        current_period_end=state.current_period_end,
        grace_until=state.grace_until,
        admin_override_tier=state.admin_override_tier,
        admin_override_reason=state.admin_override_reason,
        admin_override_by=state.admin_override_by,
        admin_override_at=state.admin_override_at,
        payment_state="requires_action" if pending is not None else "settled",
        payment_action_kind=pending.kind if pending is not None else None,
        payment_action_invoice_id=pending.invoice_id if pending is not None else None,
        payment_action_url=pending.hosted_invoice_url if pending is not None else None,
    )


class ReReads:
    """Which Stripe events a re-read already answered, so a burst of events about one
    object costs one re-read, not one each.

    Events are triggers to re-read: an event is answered by any re-read of
    its object that *began after the event arrived* and was recorded. Stripe sends
    several events for one change (`invoice.created`, `.finalized`, `.paid`,
    `customer.subscription.updated`, …) and they queue behind the workflow's lock, so
    the first re-read after the burst answers the rest of it; the checkout hand-over is
    such a trigger too. Arrivals are numbered in the order the handlers start
    (deterministic: the history orders signals and updates). A re-read counts only once
    its handler succeeded (`commit`); a failed handler `discard`s, so a redelivery
    re-reads. Kept per run: continue-as-new drains the handlers first.
    """

    def __init__(self) -> None:
        self._arrived = 0
        self._began: dict[str, int] = {}  # object id → arrivals before its uncommitted re-read
        self._answered: dict[str, int] = {}  # object id → arrivals before its last recorded re-read
        self.invoice_subscription: dict[str, str | None] = {}
        self.subscriptions: dict[str, SubscriptionSnapshot] = {}  # the latest re-read of each

    def arrive(self) -> int:
        """A Stripe event arrived: its number."""
        self._arrived += 1
        return self._arrived

    def begin(self, object_id: str) -> None:
        """A re-read of `object_id` is about to start."""
        self._began[object_id] = self._arrived

    def commit(self) -> None:
        """The handler that made the re-reads since the last commit succeeded."""
        self._answered.update(self._began)
        self._began.clear()

    def discard(self) -> None:
        self._began.clear()

    def answered(self, object_id: str, arrival: int) -> bool:
        """Whether a recorded re-read of `object_id` began after event `arrival` arrived."""
        return self._answered.get(object_id, 0) >= arrival
