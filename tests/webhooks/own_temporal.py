"""A Temporal dev server that a test may stop and start again (same history, same port).

The session's shared server must never go down under other tests, so an outage test
runs its own: `temporal server start-dev` bound to 127.0.0.1 on a free port, history in
a SQLite file of the test's tmp dir, onramp's search attributes registered.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from onramp.processes import ChildProcess, find_executable
from onramp.temporal import connect_temporal
from workflows import search_attributes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class OwnTemporal:
    def __init__(self, directory: Path) -> None:
        executable = find_executable("temporal")
        if executable is None:
            raise RuntimeError("`temporal` is not installed: run the tests with `make test`")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_file = directory / "temporal.log"
        self.argv = [
            executable, "server", "start-dev",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--headless",
            "--db-filename", str(directory / "temporal.db"),
            "--log-level", "error",
        ]  # fmt: skip
        for key in search_attributes.ALL:
            self.argv += ["--search-attribute", f"{key.name}=Keyword"]
        self.child: ChildProcess | None = None

    async def start(self, within: float = 60.0) -> Client:
        """Start (or restart) the server; return a client once it answers."""
        self.child = ChildProcess(
            "temporal", self.argv, env=dict(os.environ), log_file=self.log_file
        ).start()
        deadline = time.monotonic() + within
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.child.exit_code() is not None:
                raise RuntimeError(
                    f"temporal exited with {self.child.exit_code()}: see {self.log_file}"
                )
            try:
                client = await asyncio.wait_for(connect_temporal(self.address, "default"), 5)
                await client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=2)
                )
                return client
            except Exception as error:  # not up yet: keep polling until the deadline
                last = error
                await asyncio.sleep(0.2)  # the poll interval of a wait on a condition
        raise RuntimeError(f"temporal did not answer on {self.address} within {within} s: {last}")

    async def stop(self) -> None:
        """SIGTERM and wait (in a thread: the test's event loop serves the API meanwhile)."""
        if self.child is not None:
            child, self.child = self.child, None
            await asyncio.to_thread(child.stop, 15.0)
