"""Idempotency keys of the Stripe writes a workflow makes.

A key names the operation: `<workflow id>/<operation>/<step>`, where the operation is
the update being handled (its id is stable across the client's retries of the same
update) or, outside an update, the run. A key that must outlive the operation names
the object instead (a second subscription's cancellation is the same write whichever
run or update makes it). The keys are sent to Stripe and recorded in histories: a
change to their text is a change of behaviour.
"""

from __future__ import annotations

from temporalio import workflow


def operation_id() -> str:
    """The id of the update being handled, else the run's id."""
    update = workflow.current_update_info()
    return update.id if update is not None else workflow.info().run_id


def operation_key(step: str) -> str:
    """`<workflow id>/<update id or run id>/<step>`."""
    return f"{workflow.info().workflow_id}/{operation_id()}/{step}"


def run_key(step: str) -> str:
    """`<workflow id>/<run id>/<step>`: once per run, whichever handler asks."""
    return f"{workflow.info().workflow_id}/{workflow.info().run_id}/{step}"


def object_key(object_id: str, step: str) -> str:
    """`<workflow id>/<object id>/<step>`: once per object, across runs and updates."""
    return f"{workflow.info().workflow_id}/{object_id}/{step}"
