"""The replay test's own proof: a command-order change without a patch fails replay.

An altered copy of a workflow, registered under the real workflow's name, issues a
timer before its first step; replaying a recorded history against it must fail with
a nondeterminism error, as a real unpatched change would.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from tests.replay.test_replay import HISTORIES, load_history
from tests.support.harness import DATA_CONVERTER
from workflows.contracts.signup import SIGNUP_WORKFLOW, SignupInput, SignupResult
from workflows.signup import SignupWorkflow


@workflow.defn(name=SIGNUP_WORKFLOW)
class SignupWithAnExtraTimer(SignupWorkflow):
    @workflow.run
    async def run(self, request: SignupInput) -> SignupResult:
        await workflow.sleep(timedelta(seconds=1))
        return await super().run(request)


def _history(name: str) -> Path:
    return next(path for path in HISTORIES if path.stem == name)


async def _replay(workflow_class: type, name: str) -> Exception | None:
    replayer = Replayer(
        workflows=[workflow_class],
        data_converter=DATA_CONVERTER,  # the tests' codec: encrypted histories replay too
        # The altered class lives in this test module, which the sandbox would re-import
        # with pytest in it; determinism does not depend on the sandbox.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(
        load_history(_history(name)), raise_on_replay_failure=False
    )
    return result.replay_failure


async def test_the_unaltered_workflow_replays_without_the_sandbox_too() -> None:
    assert await _replay(SignupWorkflow, "signup_happy_path") is None


async def test_an_unpatched_command_order_change_fails_replay() -> None:
    failure = await _replay(SignupWithAnExtraTimer, "signup_happy_path")
    assert isinstance(failure, NondeterminismError), failure
    assert "Nondeterminism" in str(failure) or "nondeterminism" in str(failure).lower()
