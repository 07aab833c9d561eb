"""The `tier_audit` table: admin tier changes (who, from, to, reason, when)."""

from __future__ import annotations

from pydantic import BaseModel

from onramp.repositories import Connection


class TierAuditRow(BaseModel):
    user_id: str
    who: str
    from_tier: str
    to_tier: str
    reason: str


async def insert_audit(connection: Connection, audit: TierAuditRow) -> None:
    """Add the row (the caller writes the tier change in the same transaction)."""
    await connection.execute(
        """
        INSERT INTO tier_audit (user_id, who, from_tier, to_tier, reason)
        VALUES ($1, $2, $3, $4, $5)
        """,
        audit.user_id,
        audit.who,
        audit.from_tier,
        audit.to_tier,
        audit.reason,
    )
