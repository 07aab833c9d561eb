"""The whole onramp stack as separate processes in a scratch directory, for bench runs.

Embedded Postgres, the Temporal dev server (history in a SQLite file), the Stripe
sandbox (webhooks to the API), an SMTP sink, the worker and the API: the same
processes `onramp dev` runs, started by the same functions (`devstack.supervisor`), on
free 127.0.0.1 ports, each of which a run can kill, restart or measure. Everything is
stopped and deleted when the block ends.

    async with BenchStack.running() as stack:
        stack.api_url, stack.sandbox_url, stack.mail_dir, ...
        stack.kill_worker(); stack.start_worker()
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import stripe
from prometheus_client.parser import text_string_to_metric_families

from devstack import supervisor
from devstack.processes import ChildProcess
from devstack.stripe_catalog import ensure_catalog
from devstack.supervisor import StackError, free_port
from onramp.stripe_client import build_stripe_client

CLIENT_KEY = "bench-client-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"
STRIPE_KEY = "sk_test_onramp_bench"
# The bench's own Stripe reads (catalog, invariants) stay within what the worker (20/s
# by default) leaves of the sandbox's 25 per second for the account.
BENCH_STRIPE_REQUESTS_PER_SECOND = 5.0


def bench_stripe_client(sandbox_url: str) -> stripe.StripeClient:
    """The bench's Stripe client: onramp's, paced below the worker's share."""
    return build_stripe_client(
        STRIPE_KEY, sandbox_url, max_requests_per_second=BENCH_STRIPE_REQUESTS_PER_SECOND
    )


WEBHOOK_SECRETS = ("whsec_benchplatform0001", "whsec_benchconnect0002")
TOKEN_SECRET = "bench-token-secret-0123456789abcdef0123"
TASK_QUEUE = "onramp"


__all__ = ["StackError", "free_port"]  # re-exported for the runs


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn, the worker's threads)."""
    total_kib = 0
    for current in _process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def _process_tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.append(current)
        pending.extend(int(child) for child in children)
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process and its children."""
    ticks = 0
    for current in _process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class BenchStack:
    """The processes of one run; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.mail_dir = directory / "mail"
        self.logs = directory / "logs"
        self.temporal_port = free_port()
        self.api_port = free_port()
        self.sandbox_port = 0  # known once the sandbox runs (_start_sandbox)
        self.smtp_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.sandbox_url = ""
        self.temporal_address = f"127.0.0.1:{self.temporal_port}"
        self.database_url = ""
        self.env: dict[str, str] = {}
        self.children: dict[str, ChildProcess] = {}
        self._postgres: supervisor.Postgres | None = None

    @classmethod
    @asynccontextmanager
    async def running(cls, *, keep: bool = False) -> AsyncIterator[BenchStack]:
        directory = Path(tempfile.mkdtemp(prefix="onramp-bench-"))
        stack = cls(directory)
        try:
            await stack._start()
            yield stack
        finally:
            stack._stop()
            if keep:
                print(f"bench stack files kept in {directory}")
            else:
                shutil.rmtree(directory, ignore_errors=True)

    # -- start / stop: every service through devstack.supervisor ---------------------

    async def _start(self) -> None:
        self._postgres = await asyncio.to_thread(
            supervisor.start_postgres, self.directory / "pgdata", keep_data=False
        )
        self.database_url = await self._postgres.database("onramp")
        await self.start_temporal()
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_TASK_QUEUE": TASK_QUEUE,
            "ONRAMP_API_KEYS": f"{CLIENT_KEY}:client:bench-client,{ADMIN_KEY}:admin:bench-admin",
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRETS": ",".join(WEBHOOK_SECRETS),
            "ONRAMP_TOKEN_SECRET": TOKEN_SECRET,
            "ONRAMP_PUBLIC_URL": self.api_url,
            "SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "LOG_LEVEL": "WARNING",
            # Every simulated user comes from this one loopback address: the per-address
            # limit of the token routes would otherwise throttle the load itself.
            "ADDRESS_ROUTE_LIMIT_PER_MINUTE": "1000000",
        }
        await self._start_sandbox()
        await self._start_smtp_sink()
        self.start_worker()
        await self._start_api()

    def _stop(self) -> None:
        supervisor.stop_all(list(self.children.values()), timeout=30)
        if self._postgres is not None:
            self._postgres.stop()

    async def start_temporal(self) -> None:
        self.children["temporal"] = await asyncio.to_thread(
            supervisor.start_temporal,
            self.temporal_port,
            db_file=self.directory / "temporal.db",
            log_file=self.logs / "temporal.log",
        )

    async def _start_sandbox(self) -> None:
        webhook_url = f"{self.api_url}/v1/webhooks/stripe"
        args = [
            "--webhook-url", webhook_url, "--webhook-secret", WEBHOOK_SECRETS[0],
            "--connect-webhook-url", webhook_url,
            "--connect-webhook-secret", WEBHOOK_SECRETS[1],
        ]  # fmt: skip
        # Port 0: the sandbox binds one the OS picks and says which. A port probed free
        # earlier can be taken by the time it binds (the Temporal dev server opens ports
        # of its own in between), which failed a run now and then.
        sandbox = await asyncio.to_thread(
            supervisor.start_sandbox,
            port=0,
            args=args,
            env=self.env,
            log_file=self.logs / "sandbox.log",
        )
        self.children["sandbox"] = sandbox.child
        self.sandbox_url = sandbox.url
        self.sandbox_port = int(sandbox.url.rsplit(":", 1)[1])
        self.env["STRIPE_API_BASE"] = sandbox.url
        self.env.update(await ensure_catalog(bench_stripe_client(self.sandbox_url)))

    async def _start_smtp_sink(self) -> None:
        sink = await asyncio.to_thread(
            supervisor.start_smtp_sink,
            self.mail_dir,
            port=self.smtp_port,
            env=self.env,
            log_file=self.logs / "smtp.log",
        )
        self.children["smtp-sink"] = sink.child

    async def _start_api(self) -> None:
        self.children["api"] = await asyncio.to_thread(
            supervisor.start_api, self.api_port, self.env, log_file=self.logs / "api.log"
        )

    # -- what runs do to the stack ---------------------------------------------------

    def start_worker(self) -> None:
        self.children["worker"] = supervisor.start_worker(
            self.env, log_file=self.logs / "worker.log"
        )

    def kill_worker(self) -> None:
        """SIGKILL: no graceful shutdown, in-flight activities die mid-call."""
        self.children["worker"].kill()

    async def restart_temporal(self) -> None:
        """Stop the dev server and start it again on the same port and history file."""
        self.children["temporal"].stop(timeout=10)
        await self.start_temporal()

    def restart_postgres(self) -> None:
        """`pg_ctl restart -m immediate`: every connection drops, crash recovery runs."""
        assert self._postgres is not None
        self._postgres.restart_immediately()

    async def wait_ready(self, seconds: float = 90) -> None:
        """Until the API is ready (`/readyz`: Postgres) and the system status says
        Temporal answers and a worker polls (`/v1/admin/system`)."""
        deadline = time.monotonic() + seconds
        last = "no answer"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(timeout=15) as client:
            while time.monotonic() < deadline:
                try:
                    ready = await client.get(f"{self.api_url}/readyz")
                    system = await client.get(f"{self.api_url}/v1/admin/system", headers=headers)
                    if ready.status_code == 200 and system.status_code == 200:
                        components = system.json()["components"]
                        if all(components[name]["ok"] for name in ("temporal", "worker")):
                            return
                    last = f"{ready.text} {system.text}"
                except httpx.HTTPError as error:
                    last = str(error)
                await asyncio.sleep(0.5)
        raise StackError(f"the stack was not ready within {seconds:.0f} s: {last}")

    async def webhooks_drained(self, seconds: float = 300) -> float:
        """Wait until every webhook the sandbox queued was delivered and the API
        dispatched every event it stored (none `pending`); returns the seconds waited.

        The sandbox delivers to each endpoint one event at a time, so under load its
        queue grows and the events a run caused arrive after the run's last journey."""
        started = time.monotonic()
        connection = await asyncpg.connect(self.database_url)
        try:
            async with httpx.AsyncClient(base_url=self.sandbox_url, timeout=10) as sandbox:
                while time.monotonic() - started < seconds:
                    listed = (await sandbox.get("/_sandbox/webhooks/endpoints")).json()["data"]
                    queued = sum(endpoint["deliveries"]["queued"] for endpoint in listed)
                    pending = await connection.fetchval(
                        "SELECT count(*) FROM webhook_events WHERE status = 'pending'"
                    )
                    if queued == 0 and pending == 0:
                        return time.monotonic() - started
                    await asyncio.sleep(0.2)
        finally:
            await connection.close()
        raise StackError(f"webhooks still queued or pending after {seconds:.0f} s")

    async def api_metric(self, name: str) -> float:
        """One sample of the API's Prometheus metrics (`/metrics`), 0 when absent."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.api_url}/metrics")
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and not sample.labels:
                    return float(sample.value)
        return 0.0

    def rss(self, name: str) -> float:
        return rss_mib(self.children[name].pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the stack (Postgres included)."""
        used = {name: cpu_seconds(child.pid) for name, child in self.children.items()}
        if self._postgres is not None:
            pid = self._postgres.pid()
            used["postgres"] = cpu_seconds(pid) if pid else 0.0
        return used
