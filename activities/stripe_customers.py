"""Stripe activities that create and delete a user's customer and Connect account.

Create keys are `customer:<user id>:<generation>` / `account:<user id>:<generation>`
and the parameters never name the calling workflow, so every caller gets
the same object back from Stripe's idempotency memory. Deletes are "delete if
present": a missing object counts as deleted.

Connect accounts are created with `controller` properties (Stripe's replacement of
`type=express`: Stripe-hosted Express dashboard, the platform pays Stripe's fees and
carries payment losses, Stripe collects requirements) and request the capabilities the
platform configures (`CONNECT_CAPABILITIES`). After a replayed 500 the account is
looked for before a second create: Stripe cannot list accounts by metadata, so the
look-up walks `GET /v1/accounts` newest first, limited to the accounts created in the
last 24 h (an idempotency key, and so an unknown outcome, lives no longer), and takes
the one whose metadata names this user and generation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import stripe
from stripe.params import CustomerCreateParams, CustomerListParams
from stripe.test_helpers import TestClock
from temporalio import activity

from activities.stripe_connect import DEFAULT_CONNECT_CAPABILITIES
from activities.stripe_gateway import call_stripe, convert_stripe_error, write_once
from onramp.logging import log_event
from workflows.contracts.common import (
    CreateStripeObjectInput,
    CreateTestClockInput,
    DeleteStripeObjectInput,
)

logger = logging.getLogger(__name__)


def _is_missing(error: stripe.StripeError) -> bool:
    return error.http_status == 404


def _account_is_gone(error: stripe.StripeError) -> bool:
    """Stripe answers a deleted (or foreign) account with 403 `account_invalid`: the
    platform no longer has access to it, which for a delete means it is gone."""
    if error.http_status == 404:
        return True
    # `stripe` raises a 403 as PermissionError without copying its code: read the body.
    code = error.code or (error.error.code if error.error is not None else None)
    return error.http_status == 403 and code == "account_invalid"


async def _delete_if_present(
    operation: str, call: Awaitable[object], is_gone: Callable[[stripe.StripeError], bool]
) -> None:
    """One DELETE, where an object already gone counts as deleted.

    No idempotency key and no `write_once`: Stripe ignores keys on a DELETE, and none is
    needed, since a DELETE is idempotent by nature. A retry after any failure (a 500
    included) deletes again or is told the object is gone, which is the same success.
    """
    try:
        await call
    except stripe.StripeError as error:
        if not is_gone(error):
            raise convert_stripe_error(error, operation) from None


# The controller of an Express-like account (Stripe's mapping of `type=express`).
CONNECT_CONTROLLER: dict[str, Any] = {
    "stripe_dashboard": {"type": "express"},
    "fees": {"payer": "application"},
    "losses": {"payments": "application"},
    "requirement_collection": "stripe",
}
# An unknown outcome is at most as old as the key that hid it (Stripe keeps keys 24 h).
_OUTCOME_WINDOW_SECONDS = 24 * 3600
_ACCOUNT_PAGE = 100


def connect_account_params(
    request: CreateStripeObjectInput, capabilities: Sequence[str]
) -> dict[str, Any]:
    """The account create's parameters: the same whichever workflow asks."""
    return {
        "controller": CONNECT_CONTROLLER,
        "capabilities": {name: {"requested": True} for name in capabilities},
        "email": request.email,
        "metadata": {"user_id": request.user_id, "generation": str(request.generation)},
    }


def _on_test_clock(request: CreateStripeObjectInput) -> CustomerCreateParams:
    return {"test_clock": request.test_clock} if request.test_clock else {}


def test_clock_name(user_id: str, generation: int) -> str:
    """The name that finds a user's clock again (Stripe lists clocks without metadata)."""
    return f"onramp user {user_id} generation {generation}"


class StripeCustomerActivities:
    def __init__(
        self,
        client: stripe.StripeClient,
        *,
        connect_capabilities: Sequence[str] = DEFAULT_CONNECT_CAPABILITIES,
    ) -> None:
        self.stripe = client
        self.connect_capabilities = tuple(connect_capabilities)

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
        # The generation in the metadata tells this operation's customer from one an
        # earlier generation left behind (both carry the user id).
        metadata = {"user_id": request.user_id, "generation": str(request.generation)}

        async def create(key: str) -> stripe.Customer:
            return await self.stripe.v1.customers.create_async(
                {"email": request.email, "metadata": metadata, **_on_test_clock(request)},
                {"idempotency_key": key},
            )

        async def find_created() -> stripe.Customer | None:
            # List, not search: the list is consistent at once, search lags by up to a
            # minute. The oldest match is the one the first attempt made.
            listing: CustomerListParams = {"email": request.email, "limit": 100}
            if request.test_clock:
                # Stripe leaves customers on a test clock out of a list without it.
                listing["test_clock"] = request.test_clock
            listed = await call_stripe(
                "customers.list",
                self.stripe.v1.customers.list_async(listing),
            )
            mine = [
                c
                for c in listed.data
                if metadata.items() <= (c.to_dict().get("metadata") or {}).items()
            ]
            return min(mine, key=lambda c: (c.created, c.id)) if mine else None

        customer = await write_once(
            "customers.create",
            f"customer:{request.user_id}:{request.generation}",
            create,
            find_created,
        )
        log_event(
            logger, "SIGNUP_STEP", step="stripe_customer", user_id=request.user_id,
            stripe_customer_id=customer.id,
        )  # fmt: skip
        return customer.id

    @activity.defn
    async def delete_stripe_customer(self, request: DeleteStripeObjectInput) -> None:
        await _delete_if_present(
            "customers.delete",
            self.stripe.v1.customers.delete_async(request.stripe_id),
            _is_missing,
        )
        log_event(logger, "STRIPE_CUSTOMER_DELETED", stripe_customer_id=request.stripe_id)

    @activity.defn
    async def create_connect_account(self, request: CreateStripeObjectInput) -> str:
        params = connect_account_params(request, self.connect_capabilities)

        async def create(key: str) -> stripe.Account:
            return await self.stripe.v1.accounts.create_async(
                params,  # type: ignore[arg-type]  # a plain dict of the create's params
                {"idempotency_key": key},
            )

        async def find_created() -> stripe.Account | None:
            return await self._find_account(request)

        account = await write_once(
            "accounts.create",
            f"account:{request.user_id}:{request.generation}",
            create,
            find_created,
        )
        log_event(
            logger, "SIGNUP_STEP", step="connect_account", user_id=request.user_id,
            connect_account_id=account.id,
        )  # fmt: skip
        return account.id

    async def _find_account(self, request: CreateStripeObjectInput) -> stripe.Account | None:
        """The account this user's create (this generation) made, if it exists."""
        since = int(time.time()) - _OUTCOME_WINDOW_SECONDS
        starting_after: str | None = None
        while True:
            page_params: dict[str, Any] = {"limit": _ACCOUNT_PAGE, "created": {"gte": since}}
            if starting_after is not None:
                page_params["starting_after"] = starting_after
            page = await call_stripe(
                "accounts.list",
                self.stripe.v1.accounts.list_async(page_params),  # type: ignore[arg-type]
            )
            for account in page.data:
                metadata: dict[str, Any] = account.to_dict().get("metadata") or {}
                if metadata.get("user_id") == request.user_id and metadata.get("generation") == str(
                    request.generation
                ):
                    return account
            if not page.has_more or not page.data:
                return None
            starting_after = page.data[-1].id

    @activity.defn
    async def delete_connect_account(self, request: DeleteStripeObjectInput) -> None:
        await _delete_if_present(
            "accounts.delete",
            self.stripe.v1.accounts.delete_async(request.stripe_id),
            _account_is_gone,
        )
        log_event(logger, "CONNECT_ACCOUNT_DELETED", connect_account_id=request.stripe_id)
