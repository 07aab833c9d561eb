"""`onramp reconcile [--dry-run]`: the command hands its arguments to
`python -m worker.reconcile`, which runs one reconciliation and prints its findings."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from onramp.cli import build_parser
from tests.reconcile.conftest import AGE, ReconcileStack
from tests.support.harness import TEST_PAYLOAD_KEYS, temporal_address
from worker.reconcile import ReconcileCommandSettings, run_once

pytestmark = pytest.mark.slow


def test_the_subcommand_passes_its_arguments_on() -> None:
    args = build_parser().parse_args(["reconcile", "--dry-run"])
    assert args.reconcile_args == ["--dry-run"]
    assert args.handler.__name__ == "_cmd_reconcile"


async def test_a_run_prints_its_findings(
    reconcile_stack: ReconcileStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = reconcile_stack
    stranger = str(uuid.uuid4())
    (orphan,) = await stack.plant(
        "customers", {"metadata": {"user_id": stranger}, "created": stack.now - AGE}
    )
    settings = ReconcileCommandSettings.model_validate(
        {
            "database_url": SecretStr(stack.database_url),
            "temporal_address": temporal_address(stack.env),
            "temporal_task_queue": stack.task_queue,
            "onramp_payload_keys": TEST_PAYLOAD_KEYS,
        }
    )
    assert await run_once(settings, dry_run=True) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "complete, 1 finding(s), dry run, nothing repaired" in printed[0]
    assert printed[1].split()[:3] == ["orphan", "customer", orphan]
    assert "'reason': 'no_user'" in printed[1]
