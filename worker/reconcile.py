"""The `reconcile` Schedule, installed by the worker at start, and `onramp reconcile`.

The worker creates the Schedule, or updates its interval and action, every time it
starts (`RECONCILE_INTERVAL_SECONDS`; 0 removes it), so a deployment's settings are what
runs and nobody has to remember an install step; a pause set by an operator is kept.
Overlapping runs are skipped. `python -m worker.reconcile [--dry-run]` (what `onramp
reconcile` runs) starts one run now on the worker's task queue, waits for it and prints
its findings from Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from onramp.db import create_pool
from onramp.logging import configure_logging, log_event
from onramp.repositories import reconcile_findings
from onramp.settings import CommonSettings, PayloadCodecSettings, load_settings
from onramp.temporal import connect_temporal
from workflows.contracts.reconcile import (
    RECONCILE,
    RECONCILE_SCHEDULE_ID,
    ReconcileInput,
    reconcile_workflow_id,
)

logger = logging.getLogger(__name__)


def reconcile_schedule(task_queue: str, interval_seconds: int) -> Schedule:
    return Schedule(
        # Temporal appends the scheduled time: `reconcile-<time>` names each run.
        action=ScheduleActionStartWorkflow(
            RECONCILE.name,
            ReconcileInput(),
            id=RECONCILE_SCHEDULE_ID,
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def install_reconcile_schedule(client: Client, task_queue: str, interval_seconds: int) -> str:
    """Create or update the Schedule (or remove it when the interval is 0)."""
    handle = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    if interval_seconds == 0:
        try:
            await handle.delete()
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return "absent"
        return "removed"
    schedule = reconcile_schedule(task_queue, interval_seconds)
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
            schedule.state = current.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await handle.update(keep_state)
        return "updated"
    return "created"


class ReconcileCommandSettings(CommonSettings, PayloadCodecSettings):
    """`onramp reconcile` needs Postgres and Temporal only, and the payload keys to read
    the run's result when payloads are encrypted."""


async def run_once(settings: ReconcileCommandSettings, dry_run: bool) -> int:
    client = await connect_temporal(
        settings.temporal_address,
        settings.temporal_namespace,
        payload_keys=settings.onramp_payload_keys,
    )
    suffix = "manual-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    result = await client.execute_workflow(
        RECONCILE.name,
        ReconcileInput(dry_run=dry_run),
        id=reconcile_workflow_id(suffix),
        task_queue=settings.temporal_task_queue,
        result_type=RECONCILE.result,
    )
    pool = await create_pool(settings.database_url.get_secret_value())
    try:
        findings = await reconcile_findings.findings_of_run(pool, result.run_id)
    finally:
        await pool.close()
    mode = "dry run, nothing repaired" if dry_run else f"{result.repairs} repaired"
    state = "complete" if result.complete else "incomplete (budget reached)"
    print(f"reconcile run {result.run_id}: {state}, {len(findings)} finding(s), {mode}")  # noqa: T201
    for finding in findings:
        repaired = f" repaired: {finding.repair_note}" if finding.repair_note else ""
        print(  # noqa: T201
            f"{finding.kind:8} {finding.object_type:16} {finding.object_id:32} "
            f"user={finding.user_id or '-'} {finding.detail}{repaired}"
        )
    return 0 if result.complete else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="onramp reconcile", description="run one reconciliation now and print its findings"
    )
    parser.add_argument("--dry-run", action="store_true", help="record findings, repair nothing")
    args = parser.parse_args(argv)
    settings = load_settings(ReconcileCommandSettings)
    configure_logging(settings.log_level, log_format=settings.log_format)
    log_event(logger, "RECONCILE_REQUESTED", dry_run=args.dry_run)
    sys.exit(asyncio.run(run_once(settings, args.dry_run)))


if __name__ == "__main__":
    main()
