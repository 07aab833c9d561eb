"""`GET /v1/admin/reconciliation` (admin key): the last reconciliation runs and the open
findings, newest first, optionally of one kind (docs/RECONCILIATION.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import AdminKey
from api.deps import Pool
from api.errors import ERROR_RESPONSES
from onramp.repositories import reconcile_findings, reconcile_runs

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)

FindingKind = Literal["orphan", "missing", "drift", "stuck"]


class ReconcileRun(BaseModel):
    run_id: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: Literal["complete", "incomplete"] | None
    phase: str
    objects_checked: int
    stripe_requests: int
    findings: int
    repairs: int


class Finding(BaseModel):
    id: int
    kind: FindingKind
    object_type: str
    object_id: str
    user_id: str | None
    detail: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    last_run_id: str
    repaired_at: datetime | None
    repair_note: str | None


class Reconciliation(BaseModel):
    runs: list[ReconcileRun]
    open_counts: dict[str, int]
    findings: list[Finding]
    has_more: bool


@router.get(
    "/reconciliation",
    summary="Last reconciliation runs and the open findings (orphan, missing, drift, stuck)",
)
async def get_reconciliation(
    _: AdminKey,
    pool: Pool,
    kind: FindingKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500, description="findings to list")] = 100,
    runs: Annotated[int, Query(ge=1, le=50, description="runs to list")] = 10,
) -> Reconciliation:
    recent = await reconcile_runs.recent_runs(pool, runs)
    rows = await reconcile_findings.open_findings(pool, kind, limit + 1)
    return Reconciliation(
        runs=[
            ReconcileRun.model_validate({**run.model_dump(), "run_id": run.id}) for run in recent
        ],
        open_counts=await reconcile_findings.open_counts(pool),
        findings=[Finding.model_validate(row.model_dump()) for row in rows[:limit]],
        has_more=len(rows) > limit,
    )
