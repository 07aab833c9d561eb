"""A run pages through Stripe across continue-as-new with its cursor."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowExecutionStatus

from tests.reconcile.conftest import AGE, ReconcileStack
from workflows.contracts.reconcile import (
    RECONCILE,
    ReconcileInput,
    ReconcilePolicy,
    reconcile_workflow_id,
)

pytestmark = pytest.mark.slow

CUSTOMERS = 7


@pytest.fixture
def reconcile_policy() -> ReconcilePolicy:
    # One object per page, two pages per run: seven customers take several runs.
    return ReconcilePolicy(page_size=1, pages_per_run=2, orphan_grace_seconds=600)


async def test_a_run_continues_as_new_with_its_cursor(reconcile_stack: ReconcileStack) -> None:
    stack = reconcile_stack
    orphans = await stack.plant(
        "customers",
        *(
            {"metadata": {"user_id": str(uuid.uuid4())}, "created": stack.now - AGE}
            for _ in range(CUSTOMERS)
        ),
    )
    workflow_id = reconcile_workflow_id(f"paging-{uuid.uuid4().hex[:8]}")
    handle = await stack.env.client.start_workflow(
        RECONCILE.name,
        ReconcileInput(dry_run=True),
        id=workflow_id,
        task_queue=stack.task_queue,
        result_type=RECONCILE.result,
    )
    result = await handle.result()
    assert result.complete and result.run_id == workflow_id
    first = stack.env.client.get_workflow_handle(workflow_id, run_id=handle.first_execution_run_id)
    assert (await first.describe()).status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    run = await stack.db.fetchrow(
        "SELECT outcome, objects_checked, stripe_requests, phase, cursor "
        "FROM reconcile_runs WHERE id = $1",
        workflow_id,
    )
    assert run is not None and run["outcome"] == "complete"
    assert run["phase"] == "done" and run["cursor"] is None
    # Every customer listed exactly once (a page per customer, one more for each empty
    # list of accounts and subscriptions), whatever run of the chain read it.
    assert run["stripe_requests"] == CUSTOMERS + 2
    found = await stack.db.fetch(
        "SELECT object_id FROM reconcile_findings WHERE kind = 'orphan' AND last_run_id = $1",
        workflow_id,
    )
    assert sorted(row["object_id"] for row in found) == sorted(orphans)
    assert (
        await stack.db.fetchval(
            "SELECT count(*) FROM reconcile_seen WHERE run_id = $1", workflow_id
        )
        == 0
    )
