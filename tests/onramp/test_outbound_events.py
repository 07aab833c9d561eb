"""The outbox: every event type is inserted by the unit of work that commits its change,
in the same transaction, once.

Each change runs against embedded Postgres through the code the activities and the API
call (the activity methods themselves where they need no Temporal context), and is
applied twice, as a retried activity would be: the second time writes no row.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from activities.users import UserActivities
from onramp import billing, checkout, events, onboarding
from onramp.passwords import SET_PASSWORD
from onramp.repositories import outbound_events, password_tokens
from onramp.repositories.billing import BillingRow
from onramp.repositories.checkout_runs import CheckoutRunChange, NewCheckoutRun
from onramp.repositories.connect_account_status import AccountFlags
from onramp.repositories.outbound_events import NewOutboundEvent, OutboundEventRow
from onramp.repositories.tier_audit import TierAuditRow
from onramp.tokens import derive_token_hash
from tests.support.harness import TOKEN_SECRET
from workflows.contracts.common import InsertProfileInput, UserRef

Change = Callable[[], Awaitable[object]]


async def _twice(change: Change) -> None:
    """The change, then its retry (a retried activity runs it again)."""
    await change()
    await change()


async def events_of(pool: asyncpg.Pool, user_id: str) -> list[OutboundEventRow]:
    return await outbound_events.list_for_user(pool, user_id, limit=1000)


async def _types(pool: asyncpg.Pool, user_id: str) -> list[str]:
    return [row.type for row in await events_of(pool, user_id)]


async def new_user(pool: asyncpg.Pool) -> str:
    user_id = str(uuid.uuid4())
    profile = InsertProfileInput(
        user_id=user_id,
        email=f"events-{user_id[:8]}@example.test",
        username=f"events-{user_id[:8]}",
        wants_payouts=True,
    )
    await _twice(lambda: UserActivities(pool).insert_profile(profile))
    return user_id


async def _new_run(pool: asyncpg.Pool, user_id: str) -> str:
    run_id = f"run-{uuid.uuid4().hex}"
    await checkout.record_session(
        pool,
        NewCheckoutRun(
            run_id=run_id,
            workflow_id=f"checkout-{user_id}",
            user_id=user_id,
            tier="pro",
            billing_cycle="monthly",
            session_id=f"cs_test_{uuid.uuid4().hex}",
            session_url=None,
        ),
    )
    return run_id


def _subscription(user_id: str) -> str:
    return "sub_" + user_id.replace("-", "")


def _billing(user_id: str, tier: str, status: str) -> BillingRow:
    return BillingRow.model_validate(
        {
            "user_id": user_id,
            "tier": tier,
            "status": status,
            "billing_cycle": "monthly",
            "stripe_subscription_id": _subscription(user_id),
            "stripe_price_id": "price_Events123",
            "cancel_at_period_end": False,
            "current_period_end": datetime.now(UTC) + timedelta(days=30),
            "grace_until": datetime.now(UTC) + timedelta(days=3) if status == "past_due" else None,
            "admin_override_tier": None,
            "admin_override_reason": None,
            "admin_override_by": None,
            "admin_override_at": None,
        }
    )


def _flags(requirements_due: list[str], *, complete: bool = False) -> AccountFlags:
    return AccountFlags(
        details_submitted=complete,
        charges_enabled=complete,
        payouts_enabled=complete,
        requirements_due=requirements_due,
        disabled_reason=None if complete else "requirements.past_due",
    )


PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def _set_password(pool: asyncpg.Pool, user_id: str, run_id: str) -> str:
    """Issue a set-password token and use it (twice: the second finds it used); its id."""
    token_id = str(uuid.uuid4())
    token_hash = derive_token_hash(TOKEN_SECRET, SET_PASSWORD, token_id)
    await password_tokens.insert_token(
        pool, token_id=token_id, user_id=user_id, run_id=run_id, purpose=SET_PASSWORD,
        token_hash=token_hash, ttl_seconds=600,
    )  # fmt: skip
    outcomes = [
        await checkout.set_password(
            pool, token_hash=token_hash, purpose=SET_PASSWORD, password_hash=PASSWORD_HASH
        )
        for _ in range(2)
    ]
    assert outcomes == [checkout.SetPasswordOutcome.SET, checkout.SetPasswordOutcome.GONE]
    return token_id


@dataclass(frozen=True)
class Journey:
    user_id: str
    password_token_id: str


async def journey(pool: asyncpg.Pool) -> Journey:
    """One user through every change that has an event, each applied twice."""
    user_id = await new_user(pool)
    await _twice(lambda: UserActivities(pool).mark_user_active(UserRef(user_id=user_id)))
    run_id = await _new_run(pool, user_id)

    def state(**change: str) -> Change:
        return lambda: checkout.record_run_state(pool, CheckoutRunChange(run_id=run_id, **change))

    paid = state(
        session_status="complete", payment_state="paid", subscription_id=_subscription(user_id)
    )
    await _twice(paid)
    active = _billing(user_id, "pro", "active")
    await _twice(lambda: billing.record_billing(pool, active, None))
    await _twice(state(provisioning_state="queued"))
    await _twice(state(provisioning_state="running"))
    await _twice(state(provisioning_state="failed", provisioning_error="workspace: refused"))
    await _twice(state(provisioning_state="queued"))
    await _twice(state(provisioning_state="completed", password_state="sent"))
    token_id = await _set_password(pool, user_id, run_id)
    await _twice(lambda: billing.record_billing(pool, active, None))  # unchanged: no event
    await _twice(lambda: billing.record_billing(pool, _billing(user_id, "pro", "past_due"), None))
    await _twice(lambda: billing.record_billing(pool, _billing(user_id, "free", "canceled"), None))
    due = _flags(["individual.id_number"])
    await _twice(lambda: onboarding.record_account_status(pool, user_id, due, complete=False))
    done = _flags([], complete=True)
    await _twice(lambda: onboarding.record_account_status(pool, user_id, done, complete=True))
    return Journey(user_id=user_id, password_token_id=token_id)


async def test_each_event_type_is_written_once_by_its_change(db_pool: asyncpg.Pool) -> None:
    user_id = (await journey(db_pool)).user_id
    assert await _types(db_pool, user_id) == [
        "user.created",
        "user.active",
        "checkout.paid",
        "subscription.tier_changed",
        "provisioning.failed",
        "provisioning.completed",
        "password.set",
        "subscription.past_due",
        "subscription.tier_changed",
        "subscription.canceled",
        "onboarding.requirements_due",
        "onboarding.completed",
    ]
    rows = await events_of(db_pool, user_id)
    assert {row.type for row in rows} == set(events.CATALOGUE)
    assert len({row.id for row in rows}) == len(rows)
    for row in rows:
        assert row.id.startswith("evt_") and len(row.id) == 36
        assert row.user_id == user_id == row.data["user_id"]
        assert row.version == 1
        assert row.type == events.parse(row).TYPE
    changes = [row.data for row in rows if row.type == "subscription.tier_changed"]
    assert [(c["from_tier"], c["to_tier"]) for c in changes] == [("free", "pro"), ("pro", "free")]
    paid = next(row.data for row in rows if row.type == "checkout.paid")
    assert (paid["tier"], paid["attempt"]) == ("pro", 1)
    assert paid["subscription_id"] == _subscription(user_id)
    failed = next(row.data for row in rows if row.type == "provisioning.failed")
    assert failed["failed_step"] == "workspace"


async def test_a_change_that_repeats_writes_one_event_each_time(db_pool: asyncpg.Pool) -> None:
    # Provisioning fails, an operator retries, it fails again: two events; a retried
    # activity that finds the run already failed writes none.
    user_id = await new_user(db_pool)
    run_id = await _new_run(db_pool, user_id)
    for _ in range(2):
        for state in ("queued", "running", "failed", "failed"):
            change = CheckoutRunChange(
                run_id=run_id, provisioning_state=state, provisioning_error="workspace: no"
            )
            await checkout.record_run_state(db_pool, change)
    # And an admin moves the tier twice, then back: three changes, three events.
    for tier in ("pro", "enterprise", "pro", "pro"):
        audit = TierAuditRow(
            user_id=user_id, who="ops", from_tier="free", to_tier=tier, reason="support"
        )
        await billing.record_billing(db_pool, _billing(user_id, tier, "active"), audit)
    rows = await events_of(db_pool, user_id)
    assert [row.type for row in rows] == [
        "user.created",
        "provisioning.failed",
        "provisioning.failed",
        "subscription.tier_changed",
        "subscription.tier_changed",
        "subscription.tier_changed",
    ]
    assert len({row.id for row in rows}) == len(rows)
    tiers = [row.data for row in rows if row.type == "subscription.tier_changed"]
    assert [(t["from_tier"], t["to_tier"], t["by_admin"]) for t in tiers] == [
        ("free", "pro", True),
        ("pro", "enterprise", True),
        ("enterprise", "pro", True),
    ]


async def test_the_same_change_always_names_the_same_event() -> None:
    first = events.event_id("checkout.paid", "u1", "run-1")
    assert first == events.event_id("checkout.paid", "u1", "run-1")
    assert first != events.event_id("checkout.paid", "u1", "run-2")
    assert first != events.event_id("provisioning.completed", "u1", "run-1")


async def test_no_event_without_its_change(db_pool: asyncpg.Pool) -> None:
    # A billing write for a user that does not exist fails: no row, no event.
    ghost = str(uuid.uuid4())
    with pytest.raises((LookupError, asyncpg.ForeignKeyViolationError)):
        await billing.record_billing(db_pool, _billing(ghost, "pro", "active"), None)
    assert await _types(db_pool, ghost) == []

    # A change whose transaction fails after the event was inserted leaves neither.
    user_id = await new_user(db_pool)
    event = events.UserActiveV1(user_id=user_id)
    with pytest.raises(RuntimeError, match="after the insert"):
        async with db_pool.acquire() as connection, connection.transaction():
            assert await events.emit_once(connection, event, key=user_id)
            raise RuntimeError("the change failed after the insert")
    assert await _types(db_pool, user_id) == ["user.created"]

    # A second signup with a taken email is refused, and says nothing.
    taken = str(uuid.uuid4())
    user = await UserActivities(db_pool).read_user(UserRef(user_id=user_id))
    again = InsertProfileInput(
        user_id=taken, email=user.email, username="someone-else", wants_payouts=False
    )
    with pytest.raises(Exception, match="already exists"):
        await UserActivities(db_pool).insert_profile(again)
    assert await _types(db_pool, taken) == []


async def test_an_event_is_inserted_only_inside_a_transaction(db_pool: asyncpg.Pool) -> None:
    user_id = str(uuid.uuid4())
    event = NewOutboundEvent(
        id=events.event_id("user.active", user_id, user_id),
        type="user.active",
        version=1,
        user_id=user_id,
        data={"user_id": user_id, "status": "active"},
    )
    async with db_pool.acquire() as connection:
        with pytest.raises(outbound_events.NotInTransaction):
            await outbound_events.insert_event(connection, event)
    assert await _types(db_pool, user_id) == []


async def test_delivery_reads_every_user_in_sequence(db_pool: asyncpg.Pool) -> None:
    first = await new_user(db_pool)
    second = await new_user(db_pool)
    await UserActivities(db_pool).mark_user_active(UserRef(user_id=first))
    start = (await events_of(db_pool, first))[0].sequence - 1
    after = await outbound_events.list_after(db_pool, start, 100)
    ours = [(row.user_id, row.type) for row in after if row.user_id in (first, second)]
    assert ours == [
        (first, "user.created"),
        (second, "user.created"),
        (first, "user.active"),
    ]
    sequences = [row.sequence for row in after]
    assert sequences == sorted(sequences)
    assert len(await outbound_events.list_after(db_pool, start, 2)) == 2
    latest = (await events_of(db_pool, first))[-1]
    assert await outbound_events.get_event(db_pool, latest.id) == latest
    assert await outbound_events.list_for_user(db_pool, first, after_sequence=latest.sequence) == []


async def test_a_repeated_event_draws_no_sequence_number(db_pool: asyncpg.Pool) -> None:
    # A hole in the sequence holds delivery back until it settles: only a rolled-back
    # transaction should leave one, never a retried change.
    user_id = await new_user(db_pool)

    def event(type_: str) -> NewOutboundEvent:
        return NewOutboundEvent(
            id=f"evt_{uuid.uuid4().hex}",
            type=type_,
            version=1,
            user_id=user_id,
            data={"user_id": user_id},
        )

    first, second = event("user.active"), event("password.set")
    async with db_pool.acquire() as connection, connection.transaction():
        assert await outbound_events.insert_event(connection, first)
        assert not await outbound_events.insert_event(connection, first)
        assert not await outbound_events.insert_event(connection, first)
        assert await outbound_events.insert_event(connection, second)
    rows = {row.id: row.sequence for row in await events_of(db_pool, user_id)}
    assert rows[second.id] == rows[first.id] + 1
