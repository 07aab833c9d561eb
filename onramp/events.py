"""The catalogue of outbound events, and how a unit of work records one.

One pydantic model per event type and version: a small body of ids and states, never a
token, a password, card data or an email's content (a model whose field names look
like one is refused when it is defined). A unit of work records its events with
`emit_once` or `emit_next` on its own connection, inside the transaction that commits
the change, so an event exists if and only if the change does.

Ids derive from the change, so a retried activity inserts nothing twice: `emit_once`
for a change that happens once per subject (a user's activation, a run's payment),
`emit_next` for one that may repeat (a tier change): its id names the latest event of
that type the user already has, read while the caller holds the user's row.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from onramp.repositories import Connection, outbound_events
from onramp.repositories.outbound_events import NewOutboundEvent, OutboundEventRow

# Names a body must never carry: secrets, credentials, card data, message content.
_FORBIDDEN = re.compile(
    r"token|secret|passw(?!ord_state$)|card|cvc|cvv|iban|key|hash|email|body|link|url|cookie",
    re.IGNORECASE,
)
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "onramp:outbound-event")

Tier = Literal["free", "pro", "enterprise"]


class EventData(BaseModel):
    """The body of one event type at one version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    user_id: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        leaked = [name for name in cls.model_fields if _FORBIDDEN.search(name)]
        if leaked:
            raise TypeError(f"{cls.__name__}: an event body never carries {leaked}")


class UserCreatedV1(EventData):
    TYPE = "user.created"
    status: Literal["signing_up"] = "signing_up"
    wants_payouts: bool


class UserActiveV1(EventData):
    TYPE = "user.active"
    status: Literal["active"] = "active"


class CheckoutPaidV1(EventData):
    TYPE = "checkout.paid"
    run_id: str
    workflow_id: str
    attempt: int
    tier: Tier
    billing_cycle: Literal["monthly", "yearly"]
    checkout_session_id: str
    subscription_id: str | None
    payment_state: Literal["paid"] = "paid"


class ProvisioningCompletedV1(EventData):
    TYPE = "provisioning.completed"
    run_id: str
    workflow_id: str
    attempt: int
    tier: Tier
    provisioning_state: Literal["completed"] = "completed"


class ProvisioningFailedV1(EventData):
    TYPE = "provisioning.failed"
    run_id: str
    workflow_id: str
    attempt: int
    # The step that failed (its message stays in onramp's logs and setup status).
    failed_step: str | None
    provisioning_state: Literal["failed"] = "failed"


class PasswordSetV1(EventData):
    TYPE = "password.set"
    run_id: str
    password_state: Literal["set"] = "set"  # noqa: S105 - a state, not a secret


class SubscriptionTierChangedV1(EventData):
    TYPE = "subscription.tier_changed"
    from_tier: Tier
    to_tier: Tier
    status: str
    subscription_id: str | None
    by_admin: bool


class SubscriptionPastDueV1(EventData):
    TYPE = "subscription.past_due"
    subscription_id: str | None
    tier: Tier
    grace_until: datetime | None
    status: Literal["past_due"] = "past_due"


class SubscriptionCanceledV1(EventData):
    TYPE = "subscription.canceled"
    subscription_id: str | None
    tier: Tier
    status: Literal["canceled"] = "canceled"


class OnboardingCompletedV1(EventData):
    TYPE = "onboarding.completed"
    connect_account_id: str | None
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool


class OnboardingRequirementsDueV1(EventData):
    TYPE = "onboarding.requirements_due"
    connect_account_id: str | None
    # Stripe's names of what is missing (e.g. `individual.id_number`), never the values.
    requirements_due: list[str]
    disabled_reason: str | None


CATALOGUE: dict[str, type[EventData]] = {
    model.TYPE: model
    for model in (
        UserCreatedV1,
        UserActiveV1,
        CheckoutPaidV1,
        ProvisioningCompletedV1,
        ProvisioningFailedV1,
        PasswordSetV1,
        SubscriptionTierChangedV1,
        SubscriptionPastDueV1,
        SubscriptionCanceledV1,
        OnboardingCompletedV1,
        OnboardingRequirementsDueV1,
    )
}


def event_id(event_type: str, user_id: str, key: str) -> str:
    """`evt_<hex>`: the same change (type, user, key) always names the same event."""
    return "evt_" + uuid.uuid5(_NAMESPACE, f"{event_type}|{user_id}|{key}").hex


def _new(event: EventData, key: str) -> NewOutboundEvent:
    return NewOutboundEvent(
        id=event_id(event.TYPE, event.user_id, key),
        type=event.TYPE,
        version=event.VERSION,
        user_id=event.user_id,
        data=event.model_dump(mode="json"),
    )


async def emit_once(connection: Connection, event: EventData, *, key: str) -> bool:
    """Record an event that happens once per `key` (a user, a run, a token); False when a
    retry finds it already recorded. Call inside the change's transaction."""
    return await outbound_events.insert_event(connection, _new(event, key))


async def emit_next(connection: Connection, event: EventData) -> bool:
    """Record a repeatable event (the caller detected the transition and holds the user's
    row, so the latest event of its type is stable until it commits)."""
    latest = await outbound_events.last_sequence(connection, event.user_id, event.TYPE)
    return await outbound_events.insert_event(connection, _new(event, f"after:{latest}"))


def parse(row: OutboundEventRow) -> EventData:
    """The stored row as its catalogue model (refuses an unknown type or extra fields)."""
    model = CATALOGUE[row.type]
    if row.version != model.VERSION:
        raise ValueError(f"{row.type} v{row.version} is not in the catalogue")
    return model.model_validate(row.data)


def payload(row: OutboundEventRow) -> dict[str, Any]:
    """The JSON body delivered for a stored event (Standard Webhooks' type, timestamp and
    data, plus the event's id and version)."""
    return {
        "id": row.id,
        "type": row.type,
        "version": row.version,
        "timestamp": row.occurred_at.isoformat(),
        "data": row.data,
    }
