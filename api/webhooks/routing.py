"""Which workflow a Stripe event belongs to: a table from event type to a small function.

To handle a new event type, add an entry to :data:`ROUTES` (an exact type, or a prefix
ending in `.*`). A route function only reads Postgres; it answers with a
:class:`SignalTarget` (plain signal, or signal-with-start when `start` is set), an
:class:`Orphan` (no user or target to give it to) or an :class:`Ignore`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.webhooks.events import StripeEvent
from onramp.repositories import Db, users
from onramp.user_ids import metadata_user_id, parse_user_id
from workflows.contracts.checkout import checkout_workflow_id
from workflows.contracts.onboarding import (
    ONBOARDING_WORKFLOW,
    OnboardingWorkflowInput,
    onboarding_workflow_id,
)
from workflows.contracts.subscription import (
    SUBSCRIPTION_WORKFLOW,
    SubscriptionWorkflowInput,
    subscription_workflow_id,
)


@dataclass(frozen=True)
class StartSpec:
    """Signal-with-start: the workflow type and input used when no run is open."""

    workflow: str
    input: BaseModel


@dataclass(frozen=True)
class SignalTarget:
    workflow_id: str
    user_id: str
    start: StartSpec | None = None


@dataclass(frozen=True)
class Orphan:
    reason: str
    user_id: str | None = None


@dataclass(frozen=True)
class Ignore:
    reason: str


Route = SignalTarget | Orphan | Ignore
RouteFunction = Callable[[StripeEvent, Db], Awaitable[Route]]


def _stripe_id(value: Any, prefix: str) -> str | None:
    """An id field that may also arrive expanded (`{"id": …}`)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value.startswith(prefix) else None


async def route_checkout(event: StripeEvent, db: Db) -> Route:
    """`checkout-<user>` by plain signal: a checkout that ended gets nothing (orphaned).

    A setup-mode session (a new payment method from the billing page) belongs to the
    customer's `subscription-<user>`, which acts on its completion only."""
    if event.object.get("mode") == "setup":
        if event.type == "checkout.session.completed":
            return await route_by_customer(event, db)
        return Ignore(f"{event.type} of a setup session: only its completion changes anything")
    user_id = metadata_user_id(event.object) or parse_user_id(
        event.object.get("client_reference_id")
    )
    if user_id is None:
        return Orphan("checkout session carries no user id (metadata.user_id, client_reference_id)")
    if not await users.user_exists(db, user_id):
        return Orphan(f"unknown user {user_id}")
    return SignalTarget(checkout_workflow_id(user_id), user_id)


async def route_account(event: StripeEvent, db: Db) -> Route:
    """`onboarding-<user>` by signal-with-start, the user found by the saved account id.

    Before the account id is saved (the ensure step is between create and save), the
    account's `metadata.user_id` names the user, but only one with no other account.
    """
    account_id = _stripe_id(event.object.get("id"), "acct_")
    if account_id is None:
        return Orphan("event object has no Connect account id")
    user_id = await users.user_by_connect_account(db, account_id)
    if user_id is None:
        claimed = metadata_user_id(event.object)
        if claimed is None:
            return Orphan(f"no user has Connect account {account_id}")
        exists, saved = await users.connect_account_of(db, claimed)
        if not exists:
            return Orphan(f"unknown user {claimed} (metadata of {account_id})")
        if saved is not None:
            return Orphan(
                f"{account_id} is not the Connect account saved for user {claimed}",
                user_id=claimed,
            )
        user_id = claimed
    return SignalTarget(
        onboarding_workflow_id(user_id),
        user_id,
        StartSpec(ONBOARDING_WORKFLOW, OnboardingWorkflowInput(user_id=user_id)),
    )


async def route_by_customer(event: StripeEvent, db: Db) -> Route:
    """`subscription-<user>` by signal-with-start, the user found by the Stripe customer.

    The workflow re-reads the event's object, so an event whose object has no id (there
    is nothing to re-read) is ignored here, never handed on to fail its re-read."""
    if not isinstance(event.object.get("id"), str) or not event.object["id"]:
        return Ignore(f"{event.type} has no object id: nothing to re-read")
    customer_id = _stripe_id(event.object.get("customer"), "cus_")
    if customer_id is None:
        return Orphan("event object has no customer")
    user_id = await users.user_by_stripe_customer(db, customer_id)
    if user_id is None:
        return Orphan(f"unknown Stripe customer {customer_id}")
    return SignalTarget(
        subscription_workflow_id(user_id),
        user_id,
        StartSpec(SUBSCRIPTION_WORKFLOW, SubscriptionWorkflowInput(user_id=user_id)),
    )


def ignore(reason: str) -> RouteFunction:
    """A route that records the event as ignored with `reason` (never retried)."""

    async def route(event: StripeEvent, db: Db) -> Route:
        return Ignore(f"{event.type}: {reason}")

    return route


ROUTES: dict[str, RouteFunction] = {
    "checkout.session.completed": route_checkout,
    "checkout.session.expired": route_checkout,
    "checkout.session.async_payment_succeeded": route_checkout,
    "checkout.session.async_payment_failed": route_checkout,
    "account.updated": route_account,
    "customer.subscription.*": route_by_customer,
    "invoice.*": route_by_customer,
    # A preview of the next renewal: the invoice does not exist yet (no id to re-read);
    # the renewal's own invoice.created/paid/payment_failed events follow.
    "invoice.upcoming": ignore("a preview without an invoice id; the renewal's own events follow"),
    # A draft invoice was deleted: the object is gone, its re-read could only fail; it
    # never counted for the tier (drafts are not charged).
    "invoice.deleted": ignore("the draft invoice is gone; nothing to re-read"),
}


def find_route(event_type: str, routes: dict[str, RouteFunction] = ROUTES) -> RouteFunction | None:
    """The exact entry for `event_type`, else the longest matching `prefix.*` entry."""
    exact = routes.get(event_type)
    if exact is not None:
        return exact
    best: tuple[int, RouteFunction] | None = None
    for pattern, function in routes.items():
        if pattern.endswith(".*"):
            prefix = pattern[:-1]  # keep the dot: "invoice." never matches "invoiceitem.x"
            if event_type.startswith(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), function)
    return best[1] if best else None


async def route_event(event: StripeEvent, db: Db) -> Route:
    function = find_route(event.type)
    if function is None:
        return Ignore(f"event type {event.type} is not handled")
    return await function(event, db)
