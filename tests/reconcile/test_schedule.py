"""The `reconcile` Schedule: created at the first worker start, updated at the next ones
(an operator's pause kept), removed when the interval is 0."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.testing import WorkflowEnvironment

from worker.reconcile import install_reconcile_schedule
from workflows.contracts.reconcile import RECONCILE, RECONCILE_SCHEDULE_ID


async def test_install_is_idempotent_and_keeps_a_pause(temporal_env: WorkflowEnvironment) -> None:
    client = temporal_env.client
    handle = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    await install_reconcile_schedule(client, "onramp-schedule-test", 0)
    try:
        assert await install_reconcile_schedule(client, "onramp-schedule-test", 3600) == "created"
        assert await install_reconcile_schedule(client, "onramp-schedule-test", 3600) == "updated"
        described = await handle.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
        assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == RECONCILE.name and action.task_queue == "onramp-schedule-test"

        await handle.pause(note="operator")
        assert await install_reconcile_schedule(client, "onramp-schedule-test", 600) == "updated"
        described = await handle.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(minutes=10)
        assert described.schedule.state.paused
    finally:
        assert await install_reconcile_schedule(client, "onramp-schedule-test", 0) in (
            "removed",
            "absent",
        )
    assert await install_reconcile_schedule(client, "onramp-schedule-test", 0) == "absent"
