"""The `reconcile_seen` table: the Stripe ids one run has listed, so its `missing` phase
looks up only the saved ids that the listing did not show."""

from __future__ import annotations

from onramp.repositories import Db


async def add_seen(db: Db, run_id: str, stripe_ids: list[str]) -> None:
    if not stripe_ids:
        return
    await db.execute(
        "INSERT INTO reconcile_seen (run_id, stripe_id) "
        "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        run_id,
        stripe_ids,
    )


async def unseen(db: Db, run_id: str, stripe_ids: list[str]) -> list[str]:
    """The ids among `stripe_ids` the run has not listed."""
    rows = await db.fetch(
        "SELECT id FROM unnest($2::text[]) AS id WHERE NOT EXISTS "
        "(SELECT 1 FROM reconcile_seen s WHERE s.run_id = $1 AND s.stripe_id = id)",
        run_id,
        stripe_ids,
    )
    return [str(row["id"]) for row in rows]


async def clear_seen(db: Db, run_id: str) -> None:
    await db.execute("DELETE FROM reconcile_seen WHERE run_id = $1", run_id)
