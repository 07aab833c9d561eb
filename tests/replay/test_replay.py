"""Replay recorded histories against today's workflow code.

A change that alters the commands a workflow issues for an existing history (order,
activity types, timers) fails here, before it can break running workflows in
production. Until the first tagged release, change workflows freely and re-record the
histories; from then on, guard a change with `workflow.patched(...)` (docs/REPLAY.md).
`test_replay_detects_changes.py` proves that an unpatched change fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.support.harness import DATA_CONVERTER
from worker.build import workflow_runner
from worker.registry import workflow_classes

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_every_workflow_type_has_recorded_histories() -> None:
    recorded = {path.stem.split("_")[0] for path in HISTORIES}
    assert recorded >= {"signup", "onboarding", "checkout", "subscription"}


def load_history(path: Path) -> WorkflowHistory:
    document = json.loads(path.read_text())
    return WorkflowHistory.from_json(document["workflow_id"], document["history"])


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays_against_current_code(path: Path) -> None:
    replayer = Replayer(
        workflows=list(workflow_classes()),
        data_converter=DATA_CONVERTER,  # the tests' codec: encrypted histories replay too
        workflow_runner=workflow_runner(),
    )
    result = await replayer.replay_workflow(load_history(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
