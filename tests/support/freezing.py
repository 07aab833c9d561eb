"""Services a test may freeze: a hung dependency accepts connections and never answers.

SIGSTOP models it faithfully (the kernel still completes TCP handshakes into the
listen backlog; nothing reads them). Only processes a test started for itself are
frozen — never the session's shared services — and `frozen` always resumes them: on
exit, and from a watchdog timer if the test itself hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client

from devstack import supervisor
from devstack.processes import ChildProcess
from tests.support.harness import TEST_PAYLOAD_KEYS


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found = [pid]
    for child in children.get(pid, []):
        found += process_tree(child)
    return found


def postgres_processes(server: Any) -> list[int]:
    """The postmaster of an embedded Postgres and every backend and helper under it."""
    pgdata: Path = server.pgdata
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    return process_tree(postmaster)


def _signal_all(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


@contextlib.contextmanager
def frozen(pids: Sequence[int], *, at_most: float = 120.0) -> Iterator[None]:
    """SIGSTOP `pids` for the block; SIGCONT on exit, or after `at_most` seconds."""
    watchdog = threading.Timer(at_most, _signal_all, (list(pids), signal.SIGCONT))
    watchdog.daemon = True
    _signal_all(pids, signal.SIGSTOP)
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
        _signal_all(pids, signal.SIGCONT)


@contextlib.asynccontextmanager
async def own_temporal() -> AsyncIterator[tuple[str, ChildProcess, Client]]:
    """A Temporal dev server of the test's own (address, process, connected client),
    started by `devstack.supervisor` with its history in memory."""
    port = supervisor.free_port()
    log = Path(tempfile.gettempdir()) / f"onramp-own-temporal-{port}.log"
    child = await asyncio.to_thread(supervisor.start_temporal, port, log_file=log)
    address = f"127.0.0.1:{port}"
    try:
        client = await supervisor.connect_when_up(
            address, child, seconds=60, payload_keys=TEST_PAYLOAD_KEYS
        )
        yield address, child, client
    finally:
        child.signal(signal.SIGCONT)  # a frozen server cannot stop
        child.stop(timeout=10)
