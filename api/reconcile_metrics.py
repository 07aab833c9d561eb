"""Reconciliation's gauges, refreshed from Postgres by `api.system.SystemMonitor`.

Read from the runs and findings the worker's `reconcile` steps write, so any API
process exports them whichever worker ran the reconciliation.
"""

from __future__ import annotations

import asyncpg
from prometheus_client import Gauge

from onramp.repositories import reconcile_findings, reconcile_runs

FINDINGS = Gauge(
    "onramp_reconcile_findings",
    "Open reconciliation findings by kind (orphan, missing, drift, stuck)",
    ["kind"],
)
LAST_RUN = Gauge(
    "onramp_reconcile_last_run_timestamp_seconds",
    "When the last reconciliation run finished (Unix time; 0 before the first)",
)
DURATION = Gauge(
    "onramp_reconcile_duration_seconds",
    "How long the last finished reconciliation run took",
)


async def refresh(pool: asyncpg.Pool) -> None:
    counts = await reconcile_findings.open_counts(pool)
    for kind, count in counts.items():
        FINDINGS.labels(kind).set(count)
    last = await reconcile_runs.last_finished(pool)
    if last is not None and last.finished_at is not None:
        LAST_RUN.set(last.finished_at.timestamp())
        DURATION.set((last.finished_at - last.started_at).total_seconds())
