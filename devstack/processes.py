"""Child processes that cannot outlive the process that started them.

Used by `devstack.supervisor` and by the tests that run real worker/API processes. Each child
gets its own session (so a terminal's Ctrl-C reaches only the parent, which then
stops the children in order) and a parent-death signal (so a parent killed with
SIGKILL takes them with it). Also the Temporal dev server's command line
(`temporal_command`: its flags, search attributes, the UI's codec endpoint).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from workflows import search_attributes

_PR_SET_PDEATHSIG = 1

# WAL with synchronous=normal: a committed transaction survives the dev server's crash or
# SIGKILL (not a power cut), and the history store stops being the whole stack's
# bottleneck (several times the workflow throughput of SQLite's default rollback journal;
# docs/BENCHMARKS.md).
TEMPORAL_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")

_TEMPORAL_DYNAMIC_CONFIG = (
    "frontend.enableServerVersionCheck=false",
    "frontend.enableUpdateWorkflowExecution=true",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcess:
    """A named child process with a bounded, polite stop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        output = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_file.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
        if output is not None:
            output.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the whole process group."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL at once (crash tests), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._kill_group()

    def _kill_group(self) -> None:
        # Grandchildren (e.g. uvicorn's) share the child's session/process group.
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def stop_all(children: Sequence[ChildProcess], timeout: float = 15.0) -> None:
    """Stop children in reverse start order, within one overall deadline."""
    deadline = time.monotonic() + timeout
    for child in reversed(children):
        child.stop(timeout=max(1.0, deadline - time.monotonic()))


def find_executable(name: str) -> str | None:
    """A command installed in this Python's environment, else on PATH.

    `temporal` and `temporal-test-server` come from PyPI packages and land beside the
    interpreter, which need not be on PATH (e.g. `.venv/bin/pytest`).
    """
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which(name)


def temporal_command(
    executable: str,
    port: int,
    *,
    db_file: Path | None = None,
    ui_port: int | None = None,
    log_level: str = "error",
    ui_codec_endpoint: str | None = None,
) -> list[str]:
    """`temporal server start-dev` with onramp's search attributes registered; history in
    `db_file` (SQLite, with the pragmas above) or in memory when None; the UI (if any)
    decoding payloads through `ui_codec_endpoint` (onramp's codec server)."""
    argv = [
        executable, "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip
    argv += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    if ui_port is not None and ui_codec_endpoint:
        argv += ["--ui-codec-endpoint", ui_codec_endpoint]
    # As the SDK's own test environment runs it: no version check calling home, updates on.
    for value in _TEMPORAL_DYNAMIC_CONFIG:
        argv += ["--dynamic-config-value", value]
    if db_file is not None:
        argv += ["--db-filename", str(db_file)]
        for pragma in TEMPORAL_SQLITE_PRAGMAS:
            argv += ["--sqlite-pragma", pragma]
    for key in search_attributes.ALL:
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv
