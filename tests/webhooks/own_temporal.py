"""A Temporal dev server that a test may stop and start again (same history, same port).

The session's shared server must never go down under other tests, so an outage test
runs its own, started by `devstack.supervisor.start_temporal` (127.0.0.1, a free port,
history in a SQLite file of the test's tmp dir, onramp's search attributes registered).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from devstack import supervisor
from devstack.processes import ChildProcess
from onramp.temporal import connect_temporal
from tests.support.harness import TEST_PAYLOAD_KEYS


class OwnTemporal:
    def __init__(self, directory: Path) -> None:
        self.port = supervisor.free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_file = directory / "temporal.log"
        self.db_file = directory / "temporal.db"
        self.child: ChildProcess | None = None

    async def start(self, within: float = 60.0) -> Client:
        """Start (or restart) the server; return a client once it answers."""
        deadline = time.monotonic() + within
        self.child = await asyncio.to_thread(
            supervisor.start_temporal,
            self.port,
            db_file=self.db_file,
            log_file=self.log_file,
            timeout=within,
        )
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.child.exit_code() is not None:
                raise RuntimeError(
                    f"temporal exited with {self.child.exit_code()}: see {self.log_file}"
                )
            try:
                connecting = connect_temporal(
                    self.address, "default", payload_keys=TEST_PAYLOAD_KEYS
                )
                client = await asyncio.wait_for(connecting, 5)
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
