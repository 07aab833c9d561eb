"""The markers `make test-fast` leaves out are where they belong.

`make test-fast` runs `-m "not browser and not kill and not slow"`: a test that drives
Chromium without the `browser` marker, or a module that kills or freezes a process
without `kill`, would land in the inner loop. The whole tree is collected (whatever
this run selected) with a small plugin that keeps each item's fixtures and markers; the
kills are found in each test module's own code by its AST.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FIXTURES = {"browser", "chromium"}
KILL_SIGNALS = {"SIGKILL", "SIGSTOP"}


class _Recorder:
    """A plugin of the inner session: each collected item's fixtures and markers."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.rows = [
            {
                "nodeid": item.nodeid,
                "path": str(item.path),
                "fixtures": list(getattr(item, "fixturenames", ())),
                "marks": {mark.name for mark in item.iter_markers()},
            }
            for item in session.items
        ]


@pytest.fixture(scope="module")
def collected() -> list[dict[str, Any]]:
    """The whole tree, whatever this run selected, collected by a session of its own in
    this process (the test modules are mostly imported already: it takes a second or
    two, not the several seconds of a subprocess)."""
    recorder = _Recorder()
    argv = ["--collect-only", "-qq", "-p", "no:cacheprovider", "--rootdir", str(ROOT)]
    code = pytest.main([*argv, str(ROOT / "tests")], plugins=[recorder])
    assert code == pytest.ExitCode.OK, f"collecting the tests failed ({code!r})"
    assert len(recorder.rows) > 100, f"only {len(recorder.rows)} tests collected"
    return recorder.rows


def kills_or_freezes(source: str) -> bool:
    """Whether a module's code calls `.kill()`/`os.kill`, names SIGKILL/SIGSTOP, or takes
    `frozen` (SIGSTOP of a process tree) from tests/support/freezing.py. A `.kill()` in a
    `finally:` clause is cleanup after a failure (a child that outlived its timeout),
    not what the test does."""
    tree = ast.parse(source)
    cleanup = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.Try | ast.TryStar)
        for statement in block.finalbody
        for node in ast.walk(statement)
    }
    return any(_kills(node, cleanup) for node in ast.walk(tree))


def _kills(node: ast.AST, cleanup: set[int]) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "kill" and id(node) not in cleanup
    if isinstance(node, ast.Attribute):
        return node.attr in KILL_SIGNALS
    if isinstance(node, ast.Name):
        return node.id in KILL_SIGNALS
    if isinstance(node, ast.ImportFrom):
        names = {alias.name for alias in node.names}
        if node.module == "tests.support.freezing":
            return "frozen" in names
        return node.module == "signal" and bool(names & KILL_SIGNALS)
    return False


def test_every_test_that_drives_chromium_is_marked_browser(
    collected: list[dict[str, Any]],
) -> None:
    unmarked = [
        row["nodeid"]
        for row in collected
        if BROWSER_FIXTURES & set(row["fixtures"]) and "browser" not in row["marks"]
    ]
    assert not unmarked, f"drive Chromium but are not marked `browser`: {unmarked}"
    assert any("browser" in row["marks"] for row in collected)


def test_every_module_that_kills_or_freezes_a_process_is_marked_kill(
    collected: list[dict[str, Any]],
) -> None:
    by_module: dict[str, list[dict[str, Any]]] = {}
    for row in collected:
        by_module.setdefault(row["path"], []).append(row)
    killing = {path for path in by_module if kills_or_freezes(Path(path).read_text())}
    unmarked = [
        row["nodeid"]
        for path in sorted(killing)
        for row in by_module[path]
        if "kill" not in row["marks"]
    ]
    assert not unmarked, f"kill or freeze a process but are not marked `kill`: {unmarked}"
    assert killing, "no test module kills a process: the check has lost its subject"


@pytest.mark.parametrize(
    ("source", "kills"),
    [
        ("first_worker.kill()\n", True),
        ("import os, signal\nos.kill(pid, signal.SIGSTOP)\n", True),
        ("from signal import SIGKILL\n", True),
        ("from tests.support.freezing import frozen, own_temporal\n", True),
        ('"""Real workers are killed with SIGKILL."""\nprocess.terminate()\n', False),
        ("try:\n    run()\nfinally:\n    process.kill()\n", False),
        ("from tests.support.freezing import own_temporal\n", False),
    ],
)
def test_the_kill_check_reads_code_not_prose(source: str, kills: bool) -> None:
    assert kills_or_freezes(source) is kills
