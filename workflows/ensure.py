"""The shared "ensure Stripe customer" and "ensure Connect account" steps.

Every workflow that needs a user's customer or Connect account calls these, so one
owner creates each user-level Stripe object. One activity per side effect:

1. read the user row; if the id is there, use it;
2. create with the key `<kind>:<user>:<generation>` and caller-independent parameters;
3. save with the `IS NULL` guard;
4. if the row already holds another id (another caller won) or the save fails for good,
   delete what was just created and bump the generation, so a later retry can never be
   answered from Stripe's idempotency memory with the deleted object.

An idempotency conflict on the create means another caller is creating it right now:
wait a moment, re-read and try again.

With STRIPE_TEST_CLOCKS (the worker says so in the user it reads), a new customer is
created on its own test clock, made by its own step under `test_clock:<user>:<generation>`
just before the customer, so renewals, dunning and SCA expiry can be rehearsed against
Stripe test mode. Without it the step is not scheduled at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow

from workflows import errors, failures, policies
from workflows.contracts.common import (
    BumpGenerationInput,
    CreateStripeObjectInput,
    CreateTestClockInput,
    DeleteStripeObjectInput,
    EnsuredStripeObject,
    SaveStripeIdInput,
    UserRecord,
    UserRef,
)
from workflows.local_steps import database_step

with workflow.unsafe.imports_passed_through():
    from activities.stripe_customers import StripeCustomerActivities
    from activities.users import UserActivities

_MAX_CONFLICT_ROUNDS = 20
_DAY_SECONDS = 86_400


@dataclass(frozen=True)
class _Kind:
    label: str
    current: Callable[[UserRecord], str | None]
    generation: Callable[[UserRecord], int]
    create: Callable[..., Any]
    save: Callable[..., Any]
    delete: Callable[..., Any]
    bump: Callable[..., Any]


CUSTOMER = _Kind(
    label="Stripe customer",
    current=lambda user: user.stripe_customer_id,
    generation=lambda user: user.stripe_customer_generation,
    create=StripeCustomerActivities.create_stripe_customer,
    save=UserActivities.save_stripe_customer_id,
    delete=StripeCustomerActivities.delete_stripe_customer,
    bump=UserActivities.bump_stripe_customer_generation,
)
CONNECT_ACCOUNT = _Kind(
    label="Connect account",
    current=lambda user: user.connect_account_id,
    generation=lambda user: user.connect_account_generation,
    create=StripeCustomerActivities.create_connect_account,
    save=UserActivities.save_connect_account_id,
    delete=StripeCustomerActivities.delete_connect_account,
    bump=UserActivities.bump_connect_account_generation,
)


async def read_user(user_id: str) -> UserRecord:
    user: UserRecord = await database_step(UserActivities.read_user, UserRef(user_id=user_id))
    return user


async def ensure_stripe_customer(user_id: str) -> EnsuredStripeObject:
    return await _ensure(CUSTOMER, user_id)


async def ensure_connect_account(user_id: str) -> EnsuredStripeObject:
    return await _ensure(CONNECT_ACCOUNT, user_id)


async def _ensure(kind: _Kind, user_id: str) -> EnsuredStripeObject:
    for _ in range(_MAX_CONFLICT_ROUNDS):
        user = await read_user(user_id)
        existing = kind.current(user)
        if existing is not None:
            return EnsuredStripeObject(stripe_id=existing, created_by_this_call=False)
        generation = kind.generation(user)
        try:
            test_clock = None
            if kind is CUSTOMER and user.new_customer_on_test_clock:
                test_clock = await _create_test_clock(user_id, generation)
            created: str = await workflow.execute_activity_method(
                kind.create,
                CreateStripeObjectInput(
                    user_id=user_id, email=user.email, generation=generation, test_clock=test_clock
                ),
                **policies.STRIPE_WRITE,
            )
        except failures.STEP_FAILURES as error:
            if failures.failure_type(error) != errors.STRIPE_IDEMPOTENCY_CONFLICT:
                raise
            # Another caller is creating it under the same key right now.
            await workflow.sleep(timedelta(seconds=1))
            continue
        try:
            saved = await database_step(
                kind.save, SaveStripeIdInput(user_id=user_id, stripe_id=created)
            )
        except failures.STEP_FAILURES:
            await _discard(kind, user_id, created, generation)
            raise
        if saved.saved:
            return EnsuredStripeObject(stripe_id=created, created_by_this_call=True)
        # Another caller saved a different object first: ours must not survive.
        await _discard(kind, user_id, created, generation)
        assert saved.existing_id is not None  # "not saved" means another id is there
        return EnsuredStripeObject(stripe_id=saved.existing_id, created_by_this_call=False)
    raise failures.refuse(
        f"could not ensure the {kind.label} of user {user_id}: other callers kept conflicting",
        errors.STRIPE_IDEMPOTENCY_CONFLICT,
    )


async def _create_test_clock(user_id: str, generation: int) -> str:
    # The start of today (UTC): the same for every caller of this user and generation
    # on the same day, so they all send the same parameters under the same key.
    today = int(workflow.now().timestamp()) // _DAY_SECONDS * _DAY_SECONDS
    clock_id: str = await workflow.execute_activity_method(
        StripeCustomerActivities.create_stripe_test_clock,
        CreateTestClockInput(user_id=user_id, generation=generation, frozen_time=today),
        **policies.STRIPE_WRITE,
    )
    return clock_id


async def _discard(kind: _Kind, user_id: str, stripe_id: str, generation: int) -> None:
    await workflow.execute_activity_method(
        kind.delete, DeleteStripeObjectInput(stripe_id=stripe_id), **policies.STRIPE_WRITE
    )
    await database_step(kind.bump, BumpGenerationInput(user_id=user_id, seen_generation=generation))
