"""The `onramp` command line.

`onramp dev` runs the whole embedded stack (`python -m devstack`; `--example` adds the
example platform); `api`, `worker` and
`sandbox` run one process each (by module path: this package never imports `api`,
`worker` or the development tooling);
`migrate` applies the SQL migrations; `webhooks replay` re-dispatches stored Stripe
events (it runs `python -m api.webhooks.replay`); `stripe check` exercises onramp's
Stripe calls against a platform's test-mode account (`python -m worker.stripe_check`);
`email preview` writes the emails as files (`python -m onramp.emails.preview`);
`reconcile` runs one reconciliation now (`python -m worker.reconcile`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

from onramp.logging import configure_logging
from onramp.settings import CommonSettings, load_settings
from onramp.startup import StartupFailed, check_postgres


def _exec_module(module: str, *args: str) -> None:
    """Replace this process with `python -m module args…` (signals go straight to it)."""
    os.execv(sys.executable, [sys.executable, "-m", module, *args])  # noqa: S606


def _cmd_dev(args: argparse.Namespace) -> None:
    # Development tooling lives outside the kernel, so it runs by module path too.
    _exec_module("devstack", *(["--example"] if args.example else []))


def _cmd_api(args: argparse.Namespace) -> None:
    port = str(args.port or os.environ.get("ONRAMP_API_PORT", "8000"))
    _exec_module(
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        args.host,
        "--port",
        port,
        "--no-access-log",
    )


def _cmd_worker(_: argparse.Namespace) -> None:
    _exec_module("worker")


def _cmd_sandbox(args: argparse.Namespace) -> None:
    _exec_module("sandbox", *args.sandbox_args)


def _cmd_webhooks_replay(args: argparse.Namespace) -> None:
    # The replay reuses the API's dispatcher, so it runs as a module of `api`.
    _exec_module("api.webhooks.replay", *args.replay_args)


def _cmd_stripe_check(_: argparse.Namespace) -> None:
    # It runs the worker's activity code, so it runs as a module of `worker`.
    _exec_module("worker.stripe_check")


def _cmd_reconcile(args: argparse.Namespace) -> None:
    # It starts the `reconcile` workflow through its contract, so it runs as a module of
    # `worker` (this package imports no workflow).
    _exec_module("worker.reconcile", *args.reconcile_args)


def _cmd_email_preview(args: argparse.Namespace) -> None:
    _exec_module("onramp.emails.preview", *args.preview_args)


def _cmd_migrate(_: argparse.Namespace) -> None:
    from onramp.migrate import apply_migrations

    settings = load_settings(_MigrateSettings)
    configure_logging(settings.log_level, log_format=settings.log_format)
    dsn = settings.database_url.get_secret_value()

    async def migrate() -> list[str]:
        # An unreachable database: retried for STARTUP_WAIT_SECONDS, then one line.
        await check_postgres(dsn, settings.startup_wait_seconds)
        return await apply_migrations(dsn)

    try:
        applied = asyncio.run(migrate())
    except StartupFailed as failure:
        print(f"onramp migrate: {failure}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


class _MigrateSettings(CommonSettings):
    """`migrate` needs only the database; Temporal's address is not required."""

    temporal_address: str = "unused:0"


def _add_passthrough(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    handler: Callable[[argparse.Namespace], None],
    dest: str,
) -> None:
    """A command with no options of its own ("+" prefix): every argument, --help
    included, goes to the module it runs."""
    command = commands.add_parser(name, help=help_text, add_help=False, prefix_chars="+")
    command.add_argument(dest, nargs=argparse.REMAINDER)
    command.set_defaults(handler=handler)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onramp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole embedded stack (Ctrl-C stops it)")
    dev.add_argument(
        "--example",
        action="store_true",
        help="also run the example platform (examples/platform/): a receiver of every "
        "event and a worker for the provisioning hook",
    )
    dev.set_defaults(handler=_cmd_dev)
    api = commands.add_parser("api", help="serve the HTTP API with uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=None, help="default: $ONRAMP_API_PORT or 8000")
    api.set_defaults(handler=_cmd_api)
    commands.add_parser("worker", help="run the Temporal worker").set_defaults(handler=_cmd_worker)
    commands.add_parser("migrate", help="apply SQL migrations").set_defaults(handler=_cmd_migrate)
    _add_passthrough(
        commands, "sandbox", "run the offline Stripe sandbox", _cmd_sandbox, "sandbox_args"
    )
    webhooks = commands.add_parser("webhooks", help="operate the Stripe webhook inbox")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True)
    _add_passthrough(
        webhook_commands,
        "replay",
        "re-dispatch stored events: [--failed|--pending] [--id EVT] [--since/--until ISO]",
        _cmd_webhooks_replay,
        "replay_args",
    )
    stripe_parser = commands.add_parser("stripe", help="check the Stripe account onramp uses")
    stripe_commands = stripe_parser.add_subparsers(dest="stripe_command", required=True)
    stripe_commands.add_parser(
        "check",
        help="run each Stripe flow against test mode (STRIPE_SECRET_KEY=sk_test_…) and clean up",
    ).set_defaults(handler=_cmd_stripe_check)
    _add_passthrough(
        commands,
        "reconcile",
        "compare Stripe with Postgres now and print the findings [--dry-run]",
        _cmd_reconcile,
        "reconcile_args",
    )
    email = commands.add_parser("email", help="the emails onramp sends")
    email_commands = email.add_subparsers(dest="email_command", required=True)
    _add_passthrough(
        email_commands,
        "preview",
        "write TEMPLATE (or --all) as .html, .txt and .eml files [--out DIR]",
        _cmd_email_preview,
        "preview_args",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.handler(args)
