"""Billing's unit of work: the subscription row, the users.tier cache and the audit.

A tier change writes `billing.tier` and `users.tier` in one transaction, so the auth
cache can never drift from the source of truth; an admin's change adds its
audit row in the same transaction. The statements live in the repositories.
"""

from __future__ import annotations

import asyncpg

from onramp.repositories import billing, tier_audit, users
from onramp.repositories.billing import BillingRow
from onramp.repositories.tier_audit import TierAuditRow


async def record_billing(pool: asyncpg.Pool, row: BillingRow, audit: TierAuditRow | None) -> None:
    """Upsert the billing row, set users.tier and add the audit row: all or nothing.

    Raises LookupError (nothing written) when the user does not exist.
    """
    async with pool.acquire() as connection, connection.transaction():
        await billing.upsert_billing(connection, row)
        if not await users.set_tier(connection, row.user_id, row.tier):
            raise LookupError(f"user {row.user_id} does not exist")
        if audit is not None:
            await tier_audit.insert_audit(connection, audit)
