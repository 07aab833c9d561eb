"""The typed references the API calls workflows with (in each `workflows/contracts/`
module) match the workflow classes: registered names, and argument and result types."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio import workflow

from worker.registry import workflow_classes
from workflows.contracts import (
    checkout,
    event_delivery,
    onboarding,
    password_link,
    reconcile,
    signup,
    subscription,
)
from workflows.contracts.common import QueryRef, SignalRef, UpdateRef, WorkflowRef

_DEFINITIONS = {
    definition.name: definition
    for definition in (workflow._Definition.must_from_class(cls) for cls in workflow_classes())
}
_REFS = {
    f"{module.__name__}.{name}": value
    for module in (
        signup,
        checkout,
        onboarding,
        subscription,
        password_link,
        event_delivery,
        reconcile,
    )
    for name, value in vars(module).items()
    if isinstance(value, WorkflowRef | UpdateRef | SignalRef | QueryRef)
}


def _definition(ref: WorkflowRef[Any, Any]) -> workflow._Definition:
    assert ref.name in _DEFINITIONS, f"no workflow registered as {ref.name}"
    return _DEFINITIONS[ref.name]


def _result(declared: Any) -> Any:
    return type(None) if declared is None else declared


def test_every_workflow_has_a_reference() -> None:
    named = {ref.name for ref in _REFS.values() if isinstance(ref, WorkflowRef)}
    assert named == set(_DEFINITIONS)


@pytest.mark.parametrize("name", sorted(_REFS))
def test_reference_matches_the_workflow(name: str) -> None:
    ref = _REFS[name]
    if isinstance(ref, WorkflowRef):
        definition = _definition(ref)
        assert definition.arg_types == [ref.input]
        assert _result(definition.ret_type) is ref.result
    elif isinstance(ref, UpdateRef):
        update = _definition(ref.workflow).updates[ref.name]
        assert update.arg_types == [ref.argument]
        assert update.ret_type is ref.result
    elif isinstance(ref, SignalRef):
        signal = _definition(ref.workflow).signals[ref.name]
        assert signal.arg_types == [ref.argument]
    elif isinstance(ref, QueryRef):
        query = _definition(ref.workflow).queries[ref.name]
        assert query.arg_types == []
        assert query.ret_type is ref.result
    else:  # pragma: no cover - _REFS holds references only
        raise AssertionError(f"{name} is not a reference")
