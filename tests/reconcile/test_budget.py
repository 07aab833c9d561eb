"""A run past its budget stops as `incomplete` and resolves nothing: it has not looked at
everything, so a finding it did not see again may still be there."""

from __future__ import annotations

import pytest

from tests.reconcile.conftest import ReconcileStack
from workflows.contracts.reconcile import ReconcilePolicy

pytestmark = pytest.mark.slow


@pytest.fixture
def reconcile_policy() -> ReconcilePolicy:
    return ReconcilePolicy(budget_seconds=0.0)


async def test_an_incomplete_run_resolves_nothing(reconcile_stack: ReconcileStack) -> None:
    stack = reconcile_stack
    await stack.db.execute(
        "INSERT INTO reconcile_runs (id, workflow_id, dry_run, started_at, finished_at, outcome) "
        "VALUES ('earlier', 'earlier', false, now() - interval '1 hour', "
        "now() - interval '1 hour', 'complete')"
    )
    await stack.db.execute(
        "INSERT INTO reconcile_findings (kind, object_type, object_id, first_run_id, "
        "last_run_id, first_seen_at, last_seen_at) VALUES ('orphan', 'customer', "
        "'cus_gone000001', 'earlier', 'earlier', now() - interval '1 hour', "
        "now() - interval '1 hour')"
    )
    result = await stack.reconcile()
    assert not result.complete
    run = await stack.db.fetchrow(
        "SELECT outcome, finished_at FROM reconcile_runs WHERE id = $1", result.run_id
    )
    assert run is not None and run["outcome"] == "incomplete" and run["finished_at"] is not None
    assert (
        await stack.db.fetchval(
            "SELECT resolved_at FROM reconcile_findings WHERE object_id = 'cus_gone000001'"
        )
        is None
    )
