"""The `event_lanes` table: the users of an endpoint whose events go through a retry lane.

Written by the hand-over activity before it signals a lane, deleted when the dispatcher
learns the lane drained its last hand-over. The running dispatcher keeps the same set in
its state; this copy is for a dispatcher that starts again from scratch.
"""

from __future__ import annotations

import asyncpg

from onramp.repositories import Db


async def open_lanes(db: Db, endpoint_id: str, lanes: dict[str, int]) -> None:
    """Record (or move forward) each lane's last hand-over number. Nothing for an
    endpoint deleted meanwhile (its lanes find it gone at their first attempt)."""
    if not lanes:
        return
    try:
        await db.execute(
            """
            INSERT INTO event_lanes (endpoint_id, user_key, handover)
            SELECT $1, key, handover FROM unnest($2::text[], $3::bigint[]) AS lane(key, handover)
            ON CONFLICT (endpoint_id, user_key)
            DO UPDATE SET handover = greatest(event_lanes.handover, excluded.handover)
            """,
            endpoint_id,
            list(lanes),
            list(lanes.values()),
        )
    except asyncpg.ForeignKeyViolationError:
        return  # the endpoint is gone


async def close_lanes(db: Db, endpoint_id: str, drained: dict[str, int]) -> None:
    """Forget the lanes that drained their last hand-over (a later one keeps its row)."""
    if not drained:
        return
    await db.execute(
        """
        DELETE FROM event_lanes AS lane
        USING unnest($2::text[], $3::bigint[]) AS done(key, handover)
        WHERE lane.endpoint_id = $1 AND lane.user_key = done.key
          AND lane.handover <= done.handover
        """,
        endpoint_id,
        list(drained),
        list(drained.values()),
    )


async def lanes_of(db: Db, endpoint_id: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT user_key, handover FROM event_lanes WHERE endpoint_id = $1", endpoint_id
    )
    return {row["user_key"]: int(row["handover"]) for row in rows}
