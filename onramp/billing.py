"""The billing repository: subscription row, tier cache, invoice mirror, audit, outbox.

Only `subscription-<user>` writes here (through activities); the API reads. A tier
change writes `billing.tier` and `users.tier` in one transaction, so the auth cache
can never drift from the source of truth (SPEC 2).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from workflows.contracts.subscription import BillingRecord, InvoiceSnapshot, TierAudit

_BILLING_COLUMNS = """
    user_id::text AS user_id, tier, status, billing_cycle, stripe_subscription_id,
    stripe_price_id, cancel_at_period_end, current_period_end, grace_until,
    admin_override_tier, admin_override_reason, admin_override_by, admin_override_at,
    payment_state, payment_action_kind, payment_action_invoice_id, payment_action_url
"""


class InvoiceRow(BaseModel):
    id: str
    number: str | None
    status: str
    currency: str
    amount_due: int
    amount_paid: int
    amount_remaining: int
    total: int
    period_start: datetime | None
    period_end: datetime | None
    hosted_invoice_url: str | None
    invoice_pdf: str | None
    subscription_id: str | None
    created: datetime


class OutboxRow(BaseModel):
    id: str
    template: str
    user_id: str
    refs: dict[str, str]
    message_id: str
    status: str


async def get_billing(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> BillingRecord | None:
    row = await db.fetchrow(
        f"SELECT {_BILLING_COLUMNS} FROM billing WHERE user_id = $1",  # noqa: S608
        user_id,
    )
    return BillingRecord.model_validate(dict(row)) if row else None


async def record_billing(
    pool: asyncpg.Pool, record: BillingRecord, audit: TierAudit | None
) -> None:
    """Upsert the billing row, set users.tier and add the audit row: all or nothing."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO billing (
                user_id, tier, status, billing_cycle, stripe_subscription_id, stripe_price_id,
                cancel_at_period_end, current_period_end, grace_until, admin_override_tier,
                admin_override_reason, admin_override_by, admin_override_at, payment_state,
                payment_action_kind, payment_action_invoice_id, payment_action_url, updated_at
            ) VALUES (
                $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                now()
            )
            ON CONFLICT (user_id) DO UPDATE SET
                tier = EXCLUDED.tier, status = EXCLUDED.status,
                billing_cycle = EXCLUDED.billing_cycle,
                stripe_subscription_id = EXCLUDED.stripe_subscription_id,
                stripe_price_id = EXCLUDED.stripe_price_id,
                cancel_at_period_end = EXCLUDED.cancel_at_period_end,
                current_period_end = EXCLUDED.current_period_end,
                grace_until = EXCLUDED.grace_until,
                admin_override_tier = EXCLUDED.admin_override_tier,
                admin_override_reason = EXCLUDED.admin_override_reason,
                admin_override_by = EXCLUDED.admin_override_by,
                admin_override_at = EXCLUDED.admin_override_at,
                payment_state = EXCLUDED.payment_state,
                payment_action_kind = EXCLUDED.payment_action_kind,
                payment_action_invoice_id = EXCLUDED.payment_action_invoice_id,
                payment_action_url = EXCLUDED.payment_action_url,
                updated_at = now()
            """,
            record.user_id,
            record.tier,
            record.status,
            record.billing_cycle,
            record.stripe_subscription_id,
            record.stripe_price_id,
            record.cancel_at_period_end,
            record.current_period_end,
            record.grace_until,
            record.admin_override_tier,
            record.admin_override_reason,
            record.admin_override_by,
            record.admin_override_at,
            record.payment_state,
            record.payment_action_kind,
            record.payment_action_invoice_id,
            record.payment_action_url,
        )
        updated = await connection.execute(
            "UPDATE users SET tier = $2, updated_at = now() WHERE id = $1",
            record.user_id,
            record.tier,
        )
        if updated != "UPDATE 1":
            raise LookupError(f"user {record.user_id} does not exist")
        if audit is not None:
            await connection.execute(
                """
                INSERT INTO tier_audit (user_id, who, from_tier, to_tier, reason)
                VALUES ($1, $2, $3, $4, $5)
                """,
                record.user_id,
                audit.who,
                audit.from_tier,
                audit.to_tier,
                audit.reason,
            )


async def has_open_checkout(db: asyncpg.Pool | asyncpg.Connection, user_id: str) -> bool:
    """Whether the user's latest checkout run still has an open Checkout Session."""
    found: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM checkout_runs WHERE user_id = $1 "
        "AND session_status = 'open' AND payment_state = 'unpaid')",
        user_id,
    )
    return found


async def upsert_invoice(pool: asyncpg.Pool, user_id: str, invoice: InvoiceSnapshot) -> bool:
    """Mirror a re-read invoice for its user. An invoice row never changes owner: when
    the row belongs to another user nothing is written and the answer is False."""
    mirrored = await pool.fetchval(
        """
        INSERT INTO invoices (
            stripe_invoice_id, user_id, stripe_subscription_id, number, status, currency,
            amount_due, amount_paid, amount_remaining, total, period_start, period_end,
            hosted_invoice_url, invoice_pdf, created, updated_at
        ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, now())
        ON CONFLICT (stripe_invoice_id) DO UPDATE SET
            stripe_subscription_id = EXCLUDED.stripe_subscription_id,
            number = EXCLUDED.number, status = EXCLUDED.status, currency = EXCLUDED.currency,
            amount_due = EXCLUDED.amount_due, amount_paid = EXCLUDED.amount_paid,
            amount_remaining = EXCLUDED.amount_remaining, total = EXCLUDED.total,
            period_start = EXCLUDED.period_start, period_end = EXCLUDED.period_end,
            hosted_invoice_url = EXCLUDED.hosted_invoice_url,
            invoice_pdf = EXCLUDED.invoice_pdf, updated_at = now()
        WHERE invoices.user_id = EXCLUDED.user_id
        RETURNING true
        """,
        invoice.invoice_id,
        user_id,
        invoice.subscription_id,
        invoice.number,
        invoice.status,
        invoice.currency,
        invoice.amount_due,
        invoice.amount_paid,
        invoice.amount_remaining,
        invoice.total,
        invoice.period_start,
        invoice.period_end,
        invoice.hosted_invoice_url,
        invoice.invoice_pdf,
        invoice.created,
    )
    return mirrored is not None


async def list_invoices(
    db: asyncpg.Pool, user_id: str, *, limit: int, starting_after: str | None
) -> list[InvoiceRow]:
    """Newest first; `starting_after` is the id of the last invoice of the previous page."""
    rows = await db.fetch(
        """
        SELECT stripe_invoice_id AS id, number, status, currency, amount_due, amount_paid,
               amount_remaining, total, period_start, period_end, hosted_invoice_url,
               invoice_pdf, stripe_subscription_id AS subscription_id, created
        FROM invoices
        WHERE user_id = $1
          AND ($3::text IS NULL OR (created, stripe_invoice_id) < (
                SELECT created, stripe_invoice_id FROM invoices
                WHERE stripe_invoice_id = $3 AND user_id = $1))
        ORDER BY created DESC, stripe_invoice_id DESC
        LIMIT $2
        """,
        user_id,
        limit,
        starting_after,
    )
    return [InvoiceRow.model_validate(dict(row)) for row in rows]


async def claim_outbox(
    pool: asyncpg.Pool,
    outbox_id: str,
    template: str,
    user_id: str,
    refs: dict[str, str],
    message_id: str,
) -> OutboxRow:
    """Insert the outbox row once (a retry finds its own row) and count the attempt."""
    row = await pool.fetchrow(
        """
        INSERT INTO email_outbox (id, template, user_id, refs, message_id, attempts)
        VALUES ($1, $2, $3, $4::jsonb, $5, 1)
        ON CONFLICT (id) DO UPDATE SET attempts = email_outbox.attempts + 1
        RETURNING id::text AS id, template, user_id::text AS user_id, refs, message_id, status
        """,
        outbox_id,
        template,
        user_id,
        json.dumps(refs),
        message_id,
    )
    assert row is not None
    values: dict[str, Any] = dict(row)
    values["refs"] = json.loads(values["refs"]) if isinstance(values["refs"], str) else {}
    return OutboxRow.model_validate(values)


async def mark_outbox_sent(pool: asyncpg.Pool, outbox_id: str) -> None:
    await pool.execute(
        "UPDATE email_outbox SET status = 'sent', sent_at = now() "
        "WHERE id = $1 AND status = 'pending'",
        outbox_id,
    )
