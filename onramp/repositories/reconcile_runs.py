"""The `reconcile_runs` table: one row per reconciliation run, its progress and outcome.

A run's page step moves the cursor and adds its counts in one statement guarded by the
cursor it started from, so a retried page step never counts a page twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Db

RunOutcome = Literal["complete", "incomplete"]


class ReconcileRunRow(BaseModel):
    id: str
    workflow_id: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: RunOutcome | None
    phase: str
    cursor: str | None
    objects_checked: int
    stripe_requests: int
    findings: int
    repairs: int


class PageProgress(BaseModel):
    """Where a page step started and where it ended, with what it counted."""

    phase: str
    cursor: str | None
    next_phase: str
    next_cursor: str | None
    objects: int
    requests: int
    findings: int


_COLUMNS = (
    "id, workflow_id, dry_run, started_at, finished_at, outcome, phase, cursor, "
    "objects_checked, stripe_requests, findings, repairs"
)


async def begin_run(db: Db, run_id: str, workflow_id: str, dry_run: bool) -> ReconcileRunRow:
    """Insert the run, or find it again (a retried first step)."""
    await db.execute(
        "INSERT INTO reconcile_runs (id, workflow_id, dry_run) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO NOTHING",
        run_id,
        workflow_id,
        dry_run,
    )
    run = await get_run(db, run_id)
    assert run is not None
    return run


async def get_run(db: Db, run_id: str) -> ReconcileRunRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM reconcile_runs WHERE id = $1",  # noqa: S608
        run_id,
    )
    return ReconcileRunRow.model_validate(dict(row)) if row else None


async def advance(db: Db, run_id: str, progress: PageProgress) -> bool:
    """Move the run past one page; False when it had already moved (a retry)."""
    done = await db.fetchval(
        "UPDATE reconcile_runs SET phase = $2, cursor = $3, "
        "objects_checked = objects_checked + $4, stripe_requests = stripe_requests + $5, "
        "findings = findings + $6 "
        "WHERE id = $1 AND finished_at IS NULL AND phase = $7 "
        "AND cursor IS NOT DISTINCT FROM $8 RETURNING true",
        run_id,
        progress.next_phase,
        progress.next_cursor,
        progress.objects,
        progress.requests,
        progress.findings,
        progress.phase,
        progress.cursor,
    )
    return bool(done)


async def finish_run(db: Db, run_id: str, outcome: RunOutcome, repairs: int) -> None:
    await db.execute(
        "UPDATE reconcile_runs SET finished_at = coalesce(finished_at, now()), "
        "outcome = coalesce(outcome, $2), repairs = $3 WHERE id = $1",
        run_id,
        outcome,
        repairs,
    )


async def recent_runs(db: Db, limit: int) -> list[ReconcileRunRow]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM reconcile_runs ORDER BY started_at DESC LIMIT $1",  # noqa: S608
        limit,
    )
    return [ReconcileRunRow.model_validate(dict(row)) for row in rows]


async def last_finished(db: Db) -> ReconcileRunRow | None:
    """The run that finished last (the metrics' last run time and duration)."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM reconcile_runs WHERE finished_at IS NOT NULL "  # noqa: S608
        "ORDER BY finished_at DESC LIMIT 1"
    )
    return ReconcileRunRow.model_validate(dict(row)) if row else None
