"""The `reconcile_findings` table: what reconciliation found, one open row per object
and kind, with its repair and when a later run saw it in step again."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from onramp.repositories import Db

FindingKind = Literal["orphan", "missing", "drift", "stuck"]
FINDING_KINDS: tuple[FindingKind, ...] = ("orphan", "missing", "drift", "stuck")


class NewFinding(BaseModel):
    kind: FindingKind
    object_type: str
    object_id: str
    user_id: str | None = None
    detail: dict[str, Any] = {}


class FindingRow(BaseModel):
    id: int
    kind: FindingKind
    object_type: str
    object_id: str
    user_id: str | None
    detail: dict[str, Any]
    first_run_id: str
    last_run_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    repaired_at: datetime | None
    repair_note: str | None
    resolved_at: datetime | None


_COLUMNS = (
    "id, kind, object_type, object_id, user_id::text AS user_id, detail, first_run_id, "
    "last_run_id, first_seen_at, last_seen_at, repaired_at, repair_note, resolved_at"
)


def _row(row: Any) -> FindingRow:
    values = dict(row)
    values["detail"] = json.loads(values["detail"])
    return FindingRow.model_validate(values)


async def record_finding(db: Db, run_id: str, finding: NewFinding) -> FindingRow:
    """Insert an open finding, or move an open one's `last_seen_at` (seen again)."""
    row = await db.fetchrow(
        "INSERT INTO reconcile_findings "  # noqa: S608
        "(kind, object_type, object_id, user_id, detail, first_run_id, last_run_id) "
        "VALUES ($1, $2, $3, $4::uuid, $5::jsonb, $6, $6) "
        "ON CONFLICT (kind, object_type, object_id) WHERE resolved_at IS NULL DO UPDATE "
        "SET last_run_id = EXCLUDED.last_run_id, last_seen_at = now(), "
        "detail = EXCLUDED.detail, user_id = EXCLUDED.user_id "
        f"RETURNING {_COLUMNS}",
        finding.kind,
        finding.object_type,
        finding.object_id,
        finding.user_id,
        json.dumps(finding.detail, sort_keys=True),
        run_id,
    )
    return _row(row)


async def mark_repaired(db: Db, finding_id: int, note: str) -> None:
    await db.execute(
        "UPDATE reconcile_findings SET repaired_at = now(), repair_note = $2 WHERE id = $1",
        finding_id,
        note[:500],
    )


async def resolve_unseen(db: Db, since: datetime) -> int:
    """Resolve the open findings no run has seen since `since` (a complete run's start:
    it looked at everything and did not find them again)."""
    done = await db.execute(
        "UPDATE reconcile_findings SET resolved_at = now() "
        "WHERE resolved_at IS NULL AND last_seen_at < $1",
        since,
    )
    return int(done.split()[-1])


async def open_findings(db: Db, kind: FindingKind | None, limit: int) -> list[FindingRow]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM reconcile_findings "  # noqa: S608
        "WHERE resolved_at IS NULL AND ($1::text IS NULL OR kind = $1) "
        "ORDER BY last_seen_at DESC, id DESC LIMIT $2",
        kind,
        limit,
    )
    return [_row(row) for row in rows]


async def findings_of_run(db: Db, run_id: str) -> list[FindingRow]:
    """Every finding a run saw (first or again), for `onramp reconcile`'s report."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM reconcile_findings WHERE last_run_id = $1 "  # noqa: S608
        "ORDER BY kind, object_type, object_id",
        run_id,
    )
    return [_row(row) for row in rows]


async def open_counts(db: Db) -> dict[str, int]:
    """Open findings by kind, every kind present (0 when none)."""
    rows = await db.fetch(
        "SELECT kind, count(*) AS n FROM reconcile_findings WHERE resolved_at IS NULL GROUP BY kind"
    )
    counts: dict[str, int] = dict.fromkeys(FINDING_KINDS, 0)
    counts.update({str(row["kind"]): int(row["n"]) for row in rows})
    return counts
