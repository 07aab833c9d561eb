"""The `invoices` table: the invoice mirror `GET /v1/users/{id}/invoices` lists.

Rows are re-read invoices written by `subscription-<user>`; the API never asks Stripe.
An invoice row never changes owner.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from onramp.repositories import Db


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


async def upsert_invoice(db: Db, user_id: str, invoice: InvoiceRow) -> bool:
    """Mirror a re-read invoice for its user. When the row belongs to another user
    nothing is written and the answer is False."""
    mirrored = await db.fetchval(
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
        invoice.id,
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
    db: Db, user_id: str, *, limit: int, starting_after: str | None
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
