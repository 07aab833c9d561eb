"""`reconcile`: compare Stripe with Postgres, record what is out of step, repair the safe.

Started by the `reconcile` Schedule (hourly by default) or by `onramp reconcile`. The
run pages through each phase (workflows/contracts/reconcile.py); every page step writes
its findings and the run's progress itself, so history holds cursors and counts only.
After `pages_per_run` pages (or when Temporal suggests it) the run continues as new with
its cursor. A run past its budget stops as `incomplete`: it resolves
nothing, since it has not looked at everything.

Repairs go through the owning workflow or its idempotent step: drift is a re-read signal
to `subscription-<user>` (the webhook's path), and an orphan customer onramp created is
deleted once the step has checked again that nothing bills on it. A dry run repairs
nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from workflows import policies
from workflows.contracts.common import STATUS_QUERY
from workflows.contracts.reconcile import (
    RECONCILE_WORKFLOW,
    BeginRunInput,
    DeleteOrphanInput,
    FinishRunInput,
    PageInput,
    Phase,
    ReconcileInput,
    ReconcilePolicy,
    ReconcileResult,
    ReconcileStatus,
    RecordRepairInput,
    Repair,
    RepairOutcome,
    RereadInput,
)

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities

_PAGE: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=120),
    "schedule_to_close_timeout": timedelta(minutes=30),
    "retry_policy": policies.RETRY,
}


@workflow.defn(name=RECONCILE_WORKFLOW)
class ReconcileWorkflow:
    @workflow.init
    def __init__(self, request: ReconcileInput) -> None:
        self._request = request
        self._run_id = request.run_id
        self._phase: Phase | None = request.phase
        self._cursor = request.cursor
        self._repairs = request.repairs

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ReconcileStatus:
        return ReconcileStatus(
            run_id=self._run_id,
            dry_run=self._request.dry_run,
            phase=self._phase,
            cursor=self._cursor,
            repairs=self._repairs,
        )

    @workflow.run
    async def run(self, request: ReconcileInput) -> ReconcileResult:
        run_id, started_at, policy = await self._begin(request)
        budget = timedelta(seconds=policy.budget_seconds)
        complete = True
        pages = 0
        while self._phase is not None:
            if workflow.now() - started_at > budget:
                complete = False
                break
            if pages >= policy.pages_per_run or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    ReconcileInput(
                        dry_run=request.dry_run,
                        run_id=run_id,
                        started_at=started_at,
                        phase=self._phase,
                        cursor=self._cursor,
                        repairs=self._repairs,
                        policy=policy,
                    )
                )
            page = await workflow.execute_activity_method(
                ReconcileActivities.reconcile_page,
                PageInput(run_id=run_id, phase=self._phase, cursor=self._cursor, policy=policy),
                **_PAGE,
            )
            pages += 1
            for repair in page.repairs:
                if request.dry_run or self._repairs >= policy.max_repairs:
                    break
                await self._repair(run_id, repair, policy)
            self._phase, self._cursor = page.phase, page.cursor
        await workflow.execute_activity_method(
            ReconcileActivities.finish_reconcile_run,
            FinishRunInput(run_id=run_id, complete=complete, repairs=self._repairs),
            **policies.DATABASE,
        )
        return ReconcileResult(run_id=run_id, complete=complete, repairs=self._repairs)

    async def _begin(self, request: ReconcileInput) -> tuple[str, datetime, ReconcilePolicy]:
        """The run row: created by the first run of the chain, carried on after it."""
        run_id, started_at, policy = request.run_id, request.started_at, request.policy
        if run_id is not None and started_at is not None and policy is not None:
            return run_id, started_at, policy
        workflow_id = workflow.info().workflow_id
        started = await workflow.execute_activity_method(
            ReconcileActivities.begin_reconcile_run,
            BeginRunInput(run_id=workflow_id, workflow_id=workflow_id, dry_run=request.dry_run),
            **policies.DATABASE,
        )
        self._run_id = started.run_id
        return started.run_id, started.started_at, started.policy

    async def _repair(self, run_id: str, repair: Repair, policy: ReconcilePolicy) -> None:
        outcome: RepairOutcome
        if repair.action == "reread_subscription":
            outcome = await workflow.execute_activity_method(
                ReconcileActivities.reread_subscription,
                RereadInput(
                    run_id=run_id, user_id=repair.user_id, subscription_id=repair.stripe_id
                ),
                **policies.STRIPE_WRITE,
            )
        else:
            outcome = await workflow.execute_activity_method(
                ReconcileActivities.delete_orphan_customer,
                DeleteOrphanInput(
                    run_id=run_id,
                    user_id=repair.user_id,
                    customer_id=repair.stripe_id,
                    grace_seconds=policy.orphan_grace_seconds,
                ),
                **policies.STRIPE_WRITE,
            )
        if not outcome.done:
            workflow.logger.info(
                "RECONCILE_REPAIR_SKIPPED",
                extra={"finding_id": repair.finding_id, "note": outcome.note},
            )
            return
        self._repairs += 1
        await workflow.execute_activity_method(
            ReconcileActivities.record_repair,
            RecordRepairInput(finding_id=repair.finding_id, note=outcome.note),
            **policies.DATABASE,
        )
