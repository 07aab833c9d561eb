"""Billing's unit of work: the subscription row, the users.tier cache and the audit.

A tier change writes `billing.tier` and `users.tier` in one transaction, so the auth
cache can never drift from the source of truth; an admin's change adds its
audit row, and every change its outbound events (`onramp.events`), in the same
transaction. The statements live in the repositories.
"""

from __future__ import annotations

import asyncpg

from onramp import events
from onramp.repositories import Connection, billing, tier_audit, users
from onramp.repositories.billing import BillingRow
from onramp.repositories.tier_audit import TierAuditRow


async def record_billing(pool: asyncpg.Pool, row: BillingRow, audit: TierAuditRow | None) -> None:
    """Upsert the billing row, set users.tier and add the audit row: all or nothing.

    Raises LookupError (nothing written) when the user does not exist.
    """
    async with pool.acquire() as connection, connection.transaction():
        # The user's row first: the transitions below compare with the row as it is.
        await users.lock_user(connection, row.user_id)
        before = await billing.get_billing(connection, row.user_id)
        await billing.upsert_billing(connection, row)
        if not await users.set_tier(connection, row.user_id, row.tier):
            raise LookupError(f"user {row.user_id} does not exist")
        if audit is not None:
            await tier_audit.insert_audit(connection, audit)
        await _billing_events(connection, before, row, by_admin=audit is not None)


async def _billing_events(
    connection: Connection, before: BillingRow | None, row: BillingRow, *, by_admin: bool
) -> None:
    """One event per transition; a retry finds no transition (the row already changed)."""
    from_tier = before.tier if before else "free"
    from_status = before.status if before else "none"
    subscription_id = row.stripe_subscription_id
    if row.tier != from_tier:
        changed = events.SubscriptionTierChangedV1(
            user_id=row.user_id, from_tier=from_tier, to_tier=row.tier, status=row.status,
            subscription_id=subscription_id, by_admin=by_admin,
        )  # fmt: skip
        await events.emit_next(connection, changed)
    if row.status == "past_due" and from_status != "past_due":
        past_due = events.SubscriptionPastDueV1(
            user_id=row.user_id, subscription_id=subscription_id, tier=row.tier,
            grace_until=row.grace_until,
        )  # fmt: skip
        await events.emit_next(connection, past_due)
    if row.status == "canceled" and from_status != "canceled":
        canceled = events.SubscriptionCanceledV1(
            user_id=row.user_id, subscription_id=subscription_id, tier=row.tier
        )
        await events.emit_next(connection, canceled)
