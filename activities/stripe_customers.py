"""Stripe activities that create and delete a user's customer and Connect account.

Create keys are `customer:<user id>:<generation>` / `account:<user id>:<generation>`
and the parameters never name the calling workflow (SPEC 3.0), so every caller gets
the same object back from Stripe's idempotency memory. Deletes are "delete if
present": a missing object counts as deleted.
"""

from __future__ import annotations

import logging

import stripe
from temporalio import activity

from activities.stripe_gateway import call_stripe, convert_stripe_error, write_once
from onramp.logging import log_event
from workflows.contracts import CreateStripeObjectInput, DeleteStripeObjectInput

logger = logging.getLogger(__name__)


def _is_missing(error: stripe.StripeError) -> bool:
    return error.http_status == 404


class StripeCustomerActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def create_stripe_customer(self, request: CreateStripeObjectInput) -> str:
        # The generation in the metadata tells this operation's customer from one an
        # earlier generation left behind (both carry the user id).
        metadata = {"user_id": request.user_id, "generation": str(request.generation)}

        async def create(key: str) -> stripe.Customer:
            return await self.stripe.v1.customers.create_async(
                {"email": request.email, "metadata": metadata}, {"idempotency_key": key}
            )

        async def find_created() -> stripe.Customer | None:
            # List, not search: the list is consistent at once, search lags by up to a
            # minute. The oldest match is the one the first attempt made.
            listed = await call_stripe(
                "customers.list",
                self.stripe.v1.customers.list_async({"email": request.email, "limit": 100}),
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
        async def delete(key: str) -> bool:
            # No idempotency key: Stripe ignores it on a DELETE, which is idempotent by
            # itself (a second delete is a 404, counted as done).
            try:
                await self.stripe.v1.customers.delete_async(request.stripe_id)
            except stripe.StripeError as error:
                if not _is_missing(error):
                    raise
            return True

        async def find_deleted() -> bool | None:
            # A customer that is gone (deleted, or never there) counts as deleted.
            try:
                customer = await self.stripe.v1.customers.retrieve_async(request.stripe_id)
            except stripe.StripeError as error:
                if _is_missing(error):
                    return True
                raise convert_stripe_error(error, "customers.retrieve") from None
            return True if getattr(customer, "deleted", False) else None

        await write_once(
            "customers.delete", f"customer-delete:{request.stripe_id}", delete, find_deleted
        )
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
