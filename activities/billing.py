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
from onramp.repositories import checkout_runs, invoices
from onramp.repositories.billing import BillingRow
from onramp.repositories.invoices import InvoiceRow
from onramp.repositories.tier_audit import TierAuditRow
from onramp.settings import WorkerSettings
from workflows import errors
from workflows.contracts.common import UserRef
from workflows.contracts.subscription import (
    BillingConfig,
    BillingRecord,
    InvoiceSnapshot,
    OpenCheckoutCheck,
    RecordBillingInput,
    RecordInvoiceInput,
    TierAudit,
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


def billing_row(record: BillingRecord) -> BillingRow:
    return BillingRow(
        user_id=record.user_id,
        tier=record.tier,
        status=record.status,
        billing_cycle=record.billing_cycle,
        stripe_subscription_id=record.stripe_subscription_id,
        stripe_price_id=record.stripe_price_id,
        cancel_at_period_end=record.cancel_at_period_end,
        current_period_end=record.current_period_end,
        grace_until=record.grace_until,
        admin_override_tier=record.admin_override_tier,
        admin_override_reason=record.admin_override_reason,
        admin_override_by=record.admin_override_by,
        admin_override_at=record.admin_override_at,
        payment_state=record.payment_state,
        payment_action_kind=record.payment_action_kind,
        payment_action_invoice_id=record.payment_action_invoice_id,
        payment_action_url=record.payment_action_url,
    )


def audit_row(user_id: str, audit: TierAudit) -> TierAuditRow:
    return TierAuditRow(
        user_id=user_id,
        who=audit.who,
        from_tier=audit.from_tier,
        to_tier=audit.to_tier,
        reason=audit.reason,
    )


def invoice_row(invoice: InvoiceSnapshot) -> InvoiceRow:
    return InvoiceRow(
        id=invoice.invoice_id,
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        amount_due=invoice.amount_due,
        amount_paid=invoice.amount_paid,
        amount_remaining=invoice.amount_remaining,
        total=invoice.total,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        hosted_invoice_url=invoice.hosted_invoice_url,
        invoice_pdf=invoice.invoice_pdf,
        subscription_id=invoice.subscription_id,
        created=invoice.created,
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
        audit = audit_row(record.user_id, request.audit) if request.audit else None
        try:
            await billing.record_billing(self.pool, billing_row(record), audit)
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
            mirrored = await invoices.upsert_invoice(
                self.pool, request.user_id, invoice_row(request.invoice)
            )
        except PERMANENT_DB_ERRORS as error:
            raise ApplicationError(
                f"invoice {request.invoice.invoice_id} not mirrored: {error}",
                type=errors.BILLING_WRITE_FAILED,
                non_retryable=True,
            ) from None
        if not mirrored:
            # The mirror row is another user's: it never changes owner.
            log_event(
                logger, "STRIPE_OWNERSHIP_MISMATCH", user_id=request.user_id,
                object_id=request.invoice.invoice_id, customer_id=request.invoice.customer_id,
                where="invoice_mirror",
            )  # fmt: skip

    @activity.defn
    async def open_checkout(self, request: UserRef) -> OpenCheckoutCheck:
        """Whether the user's checkout has an open session (an upgrade through the API
        now would make a second subscription when that session is paid)."""
        return OpenCheckoutCheck(
            open=await checkout_runs.has_open_checkout(self.pool, request.user_id)
        )
