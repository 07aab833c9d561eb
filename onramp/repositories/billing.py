"""The `billing` table: the user's subscription as last re-read, and the tier's source
of truth.

Only `subscription-<user>` writes it (through activities); the API reads it. A tier
change also writes the `users.tier` cache in the same transaction (`onramp.billing`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Connection, Db

# Stripe statuses of a subscription that has ended: only then may a checkout create
# another one. Every other status is a subscription that bills, or will as soon as its
# first invoice is paid (`incomplete`: its hosted invoice page still takes the payment
# for 23 h), so a second one from a checkout would bill the user twice.
ENDED_SUBSCRIPTION_STATUSES = ("none", "canceled", "incomplete_expired")

BillingTier = Literal["free", "pro", "enterprise"]


class BillingRow(BaseModel):
    """The billing row of one user."""

    user_id: str
    tier: BillingTier
    status: str
    billing_cycle: Literal["monthly", "yearly"] | None
    stripe_subscription_id: str | None
    stripe_price_id: str | None
    cancel_at_period_end: bool
    current_period_end: datetime | None
    grace_until: datetime | None
    admin_override_tier: BillingTier | None
    admin_override_reason: str | None
    admin_override_by: str | None
    admin_override_at: datetime | None
    payment_state: Literal["settled", "requires_action"] = "settled"
    payment_action_kind: Literal["new_subscription", "price_change", "renewal"] | None = None
    payment_action_invoice_id: str | None = None
    payment_action_url: str | None = None


# Column names below come from this constant, never from input (hence the S608 noqa).
_COLUMNS = """
    user_id::text AS user_id, tier, status, billing_cycle, stripe_subscription_id,
    stripe_price_id, cancel_at_period_end, current_period_end, grace_until,
    admin_override_tier, admin_override_reason, admin_override_by, admin_override_at,
    payment_state, payment_action_kind, payment_action_invoice_id, payment_action_url
"""


async def get_billing(db: Db, user_id: str) -> BillingRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM billing WHERE user_id = $1",  # noqa: S608
        user_id,
    )
    return BillingRow.model_validate(dict(row)) if row else None


async def upsert_billing(connection: Connection, row: BillingRow) -> None:
    """Write the whole row (the caller writes `users.tier` in the same transaction)."""
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
        row.user_id,
        row.tier,
        row.status,
        row.billing_cycle,
        row.stripe_subscription_id,
        row.stripe_price_id,
        row.cancel_at_period_end,
        row.current_period_end,
        row.grace_until,
        row.admin_override_tier,
        row.admin_override_reason,
        row.admin_override_by,
        row.admin_override_at,
        row.payment_state,
        row.payment_action_kind,
        row.payment_action_invoice_id,
        row.payment_action_url,
    )


async def blocking_subscription(db: Db, user_id: str) -> str | None:
    """The status of the user's Stripe subscription when one exists that has not ended;
    None when a checkout may start."""
    status: str | None = await db.fetchval(
        """
        SELECT status FROM billing
        WHERE user_id = $1 AND stripe_subscription_id IS NOT NULL
          AND NOT (status = ANY($2::text[]))
        """,
        user_id,
        list(ENDED_SUBSCRIPTION_STATUSES),
    )
    return status


async def mirrors_of(db: Db, user_ids: list[str]) -> list[BillingRow]:
    """The billing rows of `user_ids` that exist (reconciliation's comparison)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM billing WHERE user_id = ANY($1::uuid[])",  # noqa: S608
        user_ids,
    )
    return [BillingRow.model_validate(dict(row)) for row in rows]


async def saved_subscriptions_page(
    db: Db, after_user_id: str | None, limit: int
) -> list[BillingRow]:
    """Rows that name a subscription, by user after `after_user_id` (keyset)."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM billing WHERE stripe_subscription_id IS NOT NULL "  # noqa: S608
        "AND ($1::uuid IS NULL OR user_id > $1::uuid) ORDER BY user_id LIMIT $2",
        after_user_id,
        limit,
    )
    return [BillingRow.model_validate(dict(row)) for row in rows]
