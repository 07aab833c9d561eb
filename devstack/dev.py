"""`onramp dev` (`python -m devstack`): the whole embedded stack on one machine, in the
foreground.

Starts what the environment does not already provide — embedded Postgres (data under
`.onramp/`), the Temporal dev server (history in `.onramp/temporal.db`, UI on 8233,
onramp's search attributes registered, its UI decoding payloads through the API's codec
server) — applies migrations, then runs the worker and the API. Payloads are encrypted
with a key kept in `.onramp/payload-keys` unless `ONRAMP_PAYLOAD_KEYS` is set. Whatever
the caller sets in the environment wins over the development defaults below;
`DATABASE_URL` or `TEMPORAL_ADDRESS` make it use that service instead of starting one.
Every child binds 127.0.0.1 and is stopped on Ctrl-C or SIGTERM. The services start
through `devstack.supervisor`, like the benchmarks' and the tests'; the children log
human-readable lines (`LOG_FORMAT=console`). With `--example`, the example platform runs
beside it (`devstack.example`): its worker serves the provisioning hook (decoding the
payloads with the same keys), its receiver gets every event type through an endpoint
made at start.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from devstack import supervisor
from devstack.example import (
    Example,
    banner_lines,
    start_example_receiver,
    start_example_worker,
)
from devstack.processes import ChildProcess
from devstack.stripe_catalog import ensure_catalog
from onramp.migrate import apply_migrations
from onramp.settings import stripe_key_is_live
from onramp.stripe_client import build_stripe_client

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
    # A person reads this console; production keeps JSON lines.
    "LOG_FORMAT": "console",
    # Production serves neither the interactive docs nor (optionally) metrics publicly.
    "API_DOCS_ENABLED": "true",
    "API_METRICS_ENABLED": "true",
}


# Two different signing secrets, so multi-secret verification runs every day.
DEV_PLATFORM_WEBHOOK_SECRET = "whsec_onrampdevplatform0001"  # noqa: S105 - development only
DEV_CONNECT_WEBHOOK_SECRET = "whsec_onrampdevconnect0002"  # noqa: S105 - development only


EXAMPLE_HELP = (
    "also run the example platform (examples/platform/): its receiver gets every event, "
    "its worker provisions tenants through the provisioning hook"
)


class DevStackError(RuntimeError):
    """A service of the embedded stack could not be started."""


class _Stop(Exception):
    pass


def _raise_stop(signum: int, _: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _say(line: str) -> None:
    print(line, flush=True)


@dataclass
class _Running:
    """What this run started, so that the end stops exactly that."""

    children: list[ChildProcess] = field(default_factory=list)
    postgres: supervisor.Postgres | None = None
    temporal_ui: str | None = None
    sandbox_url: str | None = None
    example: Example | None = None

    def stop(self) -> None:
        supervisor.stop_all(self.children)
        if self.postgres is not None:
            self.postgres.stop()


def _require_free(port: int, hint: str) -> None:
    if not supervisor.port_is_free(port):
        raise DevStackError(f"port {port} is in use: set {hint}")


def _start_postgres(env: dict[str, str], running: _Running) -> None:
    if "DATABASE_URL" not in env:
        _say("starting embedded Postgres (data in .onramp/pgdata)…")
        STATE_DIR.mkdir(exist_ok=True)
        running.postgres = supervisor.start_postgres(STATE_DIR.resolve() / "pgdata", keep_data=True)
        env["DATABASE_URL"] = asyncio.run(running.postgres.database("onramp", migrate=False))
    applied = asyncio.run(apply_migrations(env["DATABASE_URL"]))
    _say(f"migrations: {len(applied)} applied now")


def _start_temporal(env: dict[str, str], running: _Running) -> None:
    if "TEMPORAL_ADDRESS" in env:
        return
    port, ui_port = int(env["ONRAMP_TEMPORAL_PORT"]), int(env["ONRAMP_TEMPORAL_UI_PORT"])
    for needed in (port, ui_port):
        _require_free(
            needed,
            "ONRAMP_TEMPORAL_PORT/ONRAMP_TEMPORAL_UI_PORT or TEMPORAL_ADDRESS (another Temporal?)",
        )
    _say("starting the Temporal dev server (history in .onramp/temporal.db)…")
    running.temporal_ui = f"http://127.0.0.1:{ui_port}"
    running.children.append(
        supervisor.start_temporal(
            port,
            ui_port=ui_port,
            db_file=STATE_DIR.resolve() / "temporal.db",
            log_file=STATE_DIR / "temporal.log",
            log_level="warn",
            ui_codec_endpoint=_codec_for_ui(env, running.temporal_ui),
        )
    )
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{port}"


def _codec_for_ui(env: dict[str, str], ui_origin: str) -> str | None:
    """The UI decodes payloads through the API's codec server, from the UI's origin. The
    dev UI has no key to send, so the codec server is open here (test-mode Stripe only)."""
    if not env.get("ONRAMP_PAYLOAD_KEYS"):
        return None
    env.setdefault("TEMPORAL_UI_ORIGIN", ui_origin)
    if not stripe_key_is_live(env["STRIPE_SECRET_KEY"]):
        env.setdefault("CODEC_SERVER_OPEN", "true")
    return f"http://127.0.0.1:{env['ONRAMP_API_PORT']}/v1/codec"


def _dev_payload_keys(env: dict[str, str]) -> None:
    """Payloads are encrypted in development too, with a key kept in `.onramp/` (created
    once, readable by this user alone) unless ONRAMP_PAYLOAD_KEYS is set."""
    if "ONRAMP_PAYLOAD_KEYS" in env:
        return
    key_file = STATE_DIR / "payload-keys"
    if not key_file.exists():
        STATE_DIR.mkdir(exist_ok=True)
        key = base64.b64encode(os.urandom(32)).decode()
        key_file.touch(mode=0o600)
        key_file.write_text(f"dev-{time.strftime('%Y%m%d')}:{key}\n")
    env["ONRAMP_PAYLOAD_KEYS"] = key_file.read_text().strip()


def _start_sandbox(env: dict[str, str], running: _Running, webhook_url: str) -> None:
    """The offline Stripe, sending platform and Connect events to the API, each signed
    with its own secret; the API verifies against both. Then the tier prices, created in
    the sandbox when missing (kept in its state file)."""
    port = int(env["ONRAMP_SANDBOX_PORT"])
    _require_free(port, "ONRAMP_SANDBOX_PORT")
    secrets = [s for s in env.get("STRIPE_WEBHOOK_SECRETS", "").split(",") if s.strip()]
    platform_secret, connect_secret = (
        (secrets[0].strip(), secrets[-1].strip())
        if secrets
        else (DEV_PLATFORM_WEBHOOK_SECRET, DEV_CONNECT_WEBHOOK_SECRET)
    )
    env["STRIPE_WEBHOOK_SECRETS"] = ",".join(dict.fromkeys([platform_secret, connect_secret]))
    args = [
        "--webhook-url", webhook_url, "--webhook-secret", platform_secret,
        "--connect-webhook-url", webhook_url, "--connect-webhook-secret", connect_secret,
        "--state-file", str(STATE_DIR.resolve() / "sandbox.json"),
    ]  # fmt: skip
    _say("starting the Stripe sandbox (state in .onramp/sandbox.json)…")
    sandbox = supervisor.start_sandbox(
        port=port, args=args, env=env, log_file=STATE_DIR / "sandbox.log"
    )
    running.children.append(sandbox.child)
    running.sandbox_url = env["STRIPE_API_BASE"] = sandbox.url
    client = build_stripe_client(env["STRIPE_SECRET_KEY"], sandbox.url)
    for name, price_id in asyncio.run(ensure_catalog(client)).items():
        env.setdefault(name, price_id)


def _start_smtp_sink(env: dict[str, str], running: _Running) -> None:
    """A local SMTP server that keeps every message as an .eml file under .onramp/mail."""
    port = int(env["ONRAMP_SMTP_PORT"])
    _require_free(port, "ONRAMP_SMTP_PORT or SMTP_URL")
    sink = supervisor.start_smtp_sink(
        STATE_DIR.resolve() / "mail", port=port, env=env, log_file=STATE_DIR / "smtp.log"
    )
    running.children.append(sink.child)
    env["SMTP_URL"] = sink.url


def _start_stack(env: dict[str, str], running: _Running, *, example: bool = False) -> str:
    """Every service the environment does not provide, then the worker and the API (and
    with `example`, the example platform around them)."""
    _start_postgres(env, running)
    _dev_payload_keys(env)
    _start_temporal(env, running)
    api_port = int(env["ONRAMP_API_PORT"])
    api_url = f"http://127.0.0.1:{api_port}"
    env.setdefault("ONRAMP_PUBLIC_URL", api_url)
    if "STRIPE_API_BASE" not in os.environ and "STRIPE_SECRET_KEY" not in os.environ:
        _start_sandbox(env, running, f"{api_url}/v1/webhooks/stripe")
    if "SMTP_URL" not in os.environ:
        _start_smtp_sink(env, running)
    if example:
        running.example = start_example_worker(env, running.children, STATE_DIR)
    running.children.append(supervisor.start_worker(env))
    running.children.append(supervisor.start_api(api_port, env, timeout=90))
    _wait_until_ready(api_url, running.children, timeout=90)
    if running.example is not None:
        start_example_receiver(env, running.children, running.example, api_url)
    return api_url


def _system_missing(api_url: str) -> str | None:
    """What the system status says is missing (Temporal, a polling worker), or None when
    all is there. Checked with the dev admin key; a configured key of your own skips it."""
    system = httpx.get(
        f"{api_url}/v1/admin/system",
        headers={"Authorization": f"Bearer {DEV_ADMIN_KEY}"},
        timeout=15,
    )
    if system.status_code != 200:
        return None
    components = system.json()["components"]
    missing = [
        f"{name}: {components[name]['reason']}"
        for name in ("temporal", "worker")
        if not components[name]["ok"]
    ]
    return "; ".join(missing) or None


def _wait_until_ready(api_url: str, children: list[ChildProcess], timeout: float) -> None:
    """Until `/readyz` (the API's own: Postgres) and the system status (Temporal and a
    polling worker) are satisfied."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        for child in children:
            if child.exit_code() is not None:
                raise DevStackError(f"{child.name} exited with code {child.exit_code()}")
        try:
            response = httpx.get(f"{api_url}/readyz", timeout=5)
            if response.status_code == 200:
                missing = _system_missing(api_url)
                if missing is None:
                    return
                last = missing
            else:
                last = response.json().get("error", {}).get("message", response.text)
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.5)
    raise DevStackError(f"the API did not become ready within {timeout:.0f} s: {last}")


def _watch(children: list[ChildProcess]) -> None:
    """Report each child that exits; the rest keeps running until a signal."""
    reported: set[str] = set()
    while True:
        for child in children:
            code = child.exit_code()
            if code is not None and child.name not in reported:
                reported.add(child.name)
                _say(
                    f"onramp dev: {child.name} exited with code {code}; the rest keeps "
                    "running (GET /v1/admin/system reports what is missing). "
                    "Ctrl-C stops everything."
                )
        time.sleep(0.5)


def _payloads_line(env: dict[str, str], api_url: str) -> str:
    keys = env.get("ONRAMP_PAYLOAD_KEYS", "").strip()
    if not keys:
        return "plain (ONRAMP_PAYLOAD_KEYS is empty)"
    return f"encrypted, key {keys.split(':', 1)[0]} (codec server {api_url}/v1/codec)"


def _banner(env: dict[str, str], api_url: str, running: _Running) -> str:
    temporal_ui, sandbox_url = running.temporal_ui, running.sandbox_url
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
        f"  payloads     {_payloads_line(env, api_url)}",
        f"  Temporal     {env['TEMPORAL_ADDRESS']} (namespace {env['TEMPORAL_NAMESPACE']}, "
        f"task queue {env['TEMPORAL_TASK_QUEUE']})",
        f"  Stripe       {stripe_line}",
        f"  email        {env.get('SMTP_URL', '(none)')} → {STATE_DIR.resolve() / 'mail'}",
        f"  metrics      {api_url}/metrics (API), "
        f"http://{env['WORKER_METRICS_ADDRESS']}/metrics (worker)",
        f"  data         {STATE_DIR.resolve()} (Temporal's log: temporal.log)",
        "  API keys (development only):",
        *[f"    {entry}" for entry in keys],
        *(banner_lines(running.example) if running.example else []),
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_dev_stack(argv: Sequence[str] = ()) -> int:
    """Run until Ctrl-C/SIGTERM; return the exit code. `argv`: `[--example]`."""
    parser = argparse.ArgumentParser(prog="onramp dev")
    parser.add_argument("--example", action="store_true", help=EXAMPLE_HELP)
    arguments = parser.parse_args(argv)
    env = {**DEV_DEFAULTS, **os.environ}
    running = _Running()
    previous = {
        signum: signal.signal(signum, _raise_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        api_url = _start_stack(env, running, example=arguments.example)
        _say(_banner(env, api_url, running))
        _watch(running.children)
    except _Stop as stop:
        _say(f"\nonramp dev: {stop} received, stopping…")
        return 0
    except (DevStackError, supervisor.StackError) as error:
        print(f"onramp dev: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the orderly stop below.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        running.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _say("onramp dev: stopped")
    return 0  # pragma: no cover - _watch returns only by a signal
