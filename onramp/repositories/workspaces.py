"""The `workspaces` table: the user's portal workspace, one per user.

`run_id` says which checkout run made it, so a compensation removes only what its own
run created.
"""

from __future__ import annotations

from onramp.repositories import Db


async def create_workspace(db: Db, workspace_id: str, user_id: str, run_id: str) -> str:
    """The user's workspace: created once, found again by a retry (or a later run)."""
    await db.execute(
        "INSERT INTO workspaces (id, user_id, run_id) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id) DO NOTHING",
        workspace_id,
        user_id,
        run_id,
    )
    existing: str = await db.fetchval("SELECT id::text FROM workspaces WHERE user_id = $1", user_id)
    return existing


async def delete_workspace(db: Db, user_id: str, run_id: str) -> None:
    """Compensation: remove the workspace only if this run created it."""
    await db.execute("DELETE FROM workspaces WHERE user_id = $1 AND run_id = $2", user_id, run_id)
