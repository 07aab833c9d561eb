"""The invoice mirror never changes owner: an upsert of an invoice
already mirrored for another user writes nothing and says so."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from activities.billing import invoice_row
from devstack.stripe_events import create_user
from onramp.repositories import invoices
from workflows.contracts.subscription import InvoiceSnapshot


def _invoice(invoice_id: str, customer: str, status: str, paid: int) -> invoices.InvoiceRow:
    return invoice_row(_snapshot(invoice_id, customer, status, paid))


def _snapshot(invoice_id: str, customer: str, status: str, paid: int) -> InvoiceSnapshot:
    return InvoiceSnapshot(
        invoice_id=invoice_id,
        customer_id=customer,
        status=status,
        currency="usd",
        amount_due=2000,
        amount_paid=paid,
        total=2000,
        created=datetime(2026, 1, 1, tzinfo=UTC),
    )


async def test_an_invoice_row_stays_with_its_first_owner(db_pool: asyncpg.Pool) -> None:
    bob_customer = f"cus_{uuid.uuid4().hex[:14]}"
    carol_customer = f"cus_{uuid.uuid4().hex[:14]}"
    bob = await create_user(db_pool, customer=bob_customer)
    carol = await create_user(db_pool, customer=carol_customer)
    invoice_id = f"in_{uuid.uuid4().hex[:14]}"

    assert await invoices.upsert_invoice(
        db_pool, bob, _invoice(invoice_id, bob_customer, "open", 0)
    )
    moved = await invoices.upsert_invoice(
        db_pool, carol, _invoice(invoice_id, bob_customer, "paid", 2000)
    )

    assert moved is False
    row = await db_pool.fetchrow(
        "SELECT user_id::text AS user_id, status, amount_paid FROM invoices "
        "WHERE stripe_invoice_id = $1",
        invoice_id,
    )
    assert row is not None and dict(row) == {"user_id": bob, "status": "open", "amount_paid": 0}
    # Its own owner still updates it.
    assert await invoices.upsert_invoice(
        db_pool, bob, _invoice(invoice_id, bob_customer, "paid", 2000)
    )
    assert (
        await db_pool.fetchval(
            "SELECT status FROM invoices WHERE stripe_invoice_id = $1", invoice_id
        )
        == "paid"
    )
