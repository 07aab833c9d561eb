"""Database activities of `subscription-<user>`: configuration, billing row, invoice mirror.

`record_billing` writes the billing row and the users.tier cache in one transaction; a
permanent database error (a constraint, a trigger that refuses) fails the step for
good instead of being retried until the policy gives up.
"""

from __future__ import annotations

import logging

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from onramp import billing
from onramp.db import PERMANENT_DB_ERRORS
from onramp.logging import log_event
from onramp.settings import WorkerSettings
from workflows import errors
from workflows.contracts.common import UserRef
from workflows.contracts.subscription import (
    BillingConfig,
    OpenCheckoutCheck,
    RecordBillingInput,
    RecordInvoiceInput,
)

logger = logging.getLogger(__name__)

_REFUSED_OR_MISSING: tuple[type[Exception], ...] = (*PERMANENT_DB_ERRORS, LookupError)


def billing_config_from(settings: WorkerSettings) -> BillingConfig:
    return BillingConfig(
        prices=settings.configured_prices(),
        proration_behavior=settings.stripe_proration_behavior,
        grace_seconds=settings.subscription_grace_days * 24 * 3600,
        continue_as_new_after=settings.subscription_continue_as_new_after,
        reread_budget_seconds=settings.subscription_reread_budget_seconds,
        retry_initial_seconds=settings.subscription_retry_initial_seconds,
        retry_max_seconds=settings.subscription_retry_max_seconds,
        payment_recheck_seconds=settings.subscription_payment_recheck_seconds,
    )


class BillingActivities:
    def __init__(self, pool: asyncpg.Pool, config: BillingConfig) -> None:
        self.pool = pool
        self.config = config

    @activity.defn
    async def billing_config(self) -> BillingConfig:
        return self.config

    @activity.defn
    async def record_billing(self, request: RecordBillingInput) -> None:
        record = request.record
        try:
            await billing.record_billing(self.pool, record, request.audit)
        except _REFUSED_OR_MISSING as error:
            raise ApplicationError(
                f"billing and tier of user {record.user_id} not written: {error}",
                type=errors.BILLING_WRITE_FAILED,
                non_retryable=True,
            ) from None
        log_event(
            logger, "BILLING_RECORDED", user_id=record.user_id, tier=record.tier,
            status=record.status, stripe_subscription_id=record.stripe_subscription_id,
            admin=request.audit is not None,
        )  # fmt: skip

    @activity.defn
    async def record_invoice(self, request: RecordInvoiceInput) -> None:
        try:
            mirrored = await billing.upsert_invoice(self.pool, request.user_id, request.invoice)
        except PERMANENT_DB_ERRORS as error:
            raise ApplicationError(
                f"invoice {request.invoice.invoice_id} not mirrored: {error}",
                type=errors.BILLING_WRITE_FAILED,
                non_retryable=True,
            ) from None
        if not mirrored:
            # The mirror row is another user's: it never changes owner (SPEC 10).
            log_event(
                logger, "STRIPE_OWNERSHIP_MISMATCH", user_id=request.user_id,
                object_id=request.invoice.invoice_id, customer_id=request.invoice.customer_id,
                where="invoice_mirror",
            )  # fmt: skip

    @activity.defn
    async def open_checkout(self, request: UserRef) -> OpenCheckoutCheck:
        """Whether the user's checkout has an open session (an upgrade through the API
        now would make a second subscription when that session is paid)."""
        return OpenCheckoutCheck(open=await billing.has_open_checkout(self.pool, request.user_id))
