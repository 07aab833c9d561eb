"""Stripe activities that create and delete a user's customer and Connect account.

Create keys are `customer:<user id>:<generation>` / `account:<user id>:<generation>`
and the parameters never name the calling workflow (SPEC 3.0), so every caller gets
the same object back from Stripe's idempotency memory. Deletes are "delete if
present": a missing object counts as deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import stripe
from stripe.params import CustomerCreateParams
from stripe.test_helpers import TestClock
from temporalio import activity

from activities.stripe_gateway import call_stripe, convert_stripe_error, write_once
from onramp.logging import log_event
from workflows.contracts import (
    CreateStripeObjectInput,
    CreateTestClockInput,
    DeleteStripeObjectInput,
)

logger = logging.getLogger(__name__)


def _is_missing(error: stripe.StripeError) -> bool:
    return error.http_status == 404


def _on_test_clock(request: CreateStripeObjectInput) -> CustomerCreateParams:
    return {"test_clock": request.test_clock} if request.test_clock else {}


def test_clock_name(user_id: str, generation: int) -> str:
    """The name that finds a user's clock again (Stripe lists clocks without metadata)."""
    return f"onramp user {user_id} generation {generation}"


class StripeCustomerActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def create_stripe_test_clock(self, request: CreateTestClockInput) -> str:
        """The customer's own test clock (STRIPE_TEST_CLOCKS, test mode only)."""
        name = test_clock_name(request.user_id, request.generation)

        def create(key: str) -> Awaitable[TestClock]:
            return self.stripe.v1.test_helpers.test_clocks.create_async(
                {"frozen_time": request.frozen_time, "name": name}, {"idempotency_key": key}
            )

        async def find() -> TestClock | None:
            clocks = await call_stripe(
                "test_helpers.test_clocks.list",
                self.stripe.v1.test_helpers.test_clocks.list_async({"limit": 100}),
            )
            async for clock in clocks.auto_paging_iter():
                if clock.name == name:
                    return clock
            return None

        clock = await write_once(
            "test_helpers.test_clocks.create",
            f"test_clock:{request.user_id}:{request.generation}",
            create,
            find,
        )
        log_event(
            logger, "SIGNUP_STEP", step="test_clock", user_id=request.user_id,
            test_clock_id=clock.id,
        )  # fmt: skip
        return clock.id

    @activity.defn
    async def create_stripe_customer(self, request: CreateStripeObjectInput) -> str:
        customer = await call_stripe(
            "customers.create",
            self.stripe.v1.customers.create_async(
                {
                    "email": request.email,
                    "metadata": {"user_id": request.user_id},
                    **_on_test_clock(request),
                },
                {"idempotency_key": f"customer:{request.user_id}:{request.generation}"},
            ),
        )
        log_event(
            logger, "SIGNUP_STEP", step="stripe_customer", user_id=request.user_id,
            stripe_customer_id=customer.id,
        )  # fmt: skip
        return customer.id

    @activity.defn
    async def delete_stripe_customer(self, request: DeleteStripeObjectInput) -> None:
        try:
            await self.stripe.v1.customers.delete_async(request.stripe_id)
        except stripe.StripeError as error:
            if not _is_missing(error):
                raise convert_stripe_error(error, "customers.delete") from None
        log_event(logger, "STRIPE_CUSTOMER_DELETED", stripe_customer_id=request.stripe_id)

    @activity.defn
    async def create_connect_account(self, request: CreateStripeObjectInput) -> str:
        account = await call_stripe(
            "accounts.create",
            self.stripe.v1.accounts.create_async(
                {
                    "type": "express",
                    "email": request.email,
                    "metadata": {"user_id": request.user_id},
                },
                {"idempotency_key": f"account:{request.user_id}:{request.generation}"},
            ),
        )
        log_event(
            logger, "SIGNUP_STEP", step="connect_account", user_id=request.user_id,
            connect_account_id=account.id,
        )  # fmt: skip
        return account.id

    @activity.defn
    async def delete_connect_account(self, request: DeleteStripeObjectInput) -> None:
        try:
            await self.stripe.v1.accounts.delete_async(request.stripe_id)
        except stripe.StripeError as error:
            if not _is_missing(error):
                raise convert_stripe_error(error, "accounts.delete") from None
        log_event(logger, "CONNECT_ACCOUNT_DELETED", connect_account_id=request.stripe_id)
