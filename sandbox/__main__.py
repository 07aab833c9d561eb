"""`python -m sandbox`: run the Stripe sandbox until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from sandbox.domain.config import Config, EndpointConfig
from sandbox.domain.webhooks import RetryPolicy
from sandbox.http.app import create_app


class _Server(uvicorn.Server):
    ready_line = ""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.ready_line:
            sys.stdout.write(self.ready_line + "\n")
            sys.stdout.flush()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Stop gracefully and exit 0, instead of re-raising the signal after shutdown.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Offline Stripe-compatible server for onramp."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111, help="0 picks a free port")
    parser.add_argument("--webhook-url", action="append", default=[])
    parser.add_argument("--webhook-secret", action="append", default=[])
    parser.add_argument("--connect-webhook-url", action="append", default=[])
    parser.add_argument("--connect-webhook-secret", action="append", default=[])
    parser.add_argument("--state-file", type=Path)
    parser.add_argument(
        "--save-interval",
        type=float,
        default=1.0,
        help="seconds between state-file writes while state changes",
    )
    parser.add_argument(
        "--webhook-retry-initial",
        type=float,
        default=0.5,
        help="first retry delay in seconds (doubles each attempt)",
    )
    parser.add_argument(
        "--webhook-retry-max", type=float, default=30.0, help="longest retry delay in seconds"
    )
    parser.add_argument(
        "--webhook-attempts", type=int, default=8, help="delivery attempts per event and endpoint"
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=25.0,
        help="requests per second per API key, Stripe's test-mode limit (0 turns limits off)",
    )
    parser.add_argument(
        "--endpoint-rate-limit",
        type=float,
        default=25.0,
        help="requests per second per API key and endpoint, Stripe's default",
    )
    parser.add_argument("--log-level", default="warning")
    return parser


def _endpoints(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[EndpointConfig]:
    """The webhook endpoints given on the command line, each URL with its secret."""
    for kind in ("webhook", "connect_webhook"):
        urls, secrets = getattr(args, f"{kind}_url"), getattr(args, f"{kind}_secret")
        if len(urls) != len(secrets):
            flag = kind.replace("_", "-")
            parser.error(f"each --{flag}-url needs one --{flag}-secret (in the same order)")
    endpoints = [
        EndpointConfig(u, s) for u, s in zip(args.webhook_url, args.webhook_secret, strict=True)
    ]
    endpoints += [
        EndpointConfig(u, s, connect=True)
        for u, s in zip(args.connect_webhook_url, args.connect_webhook_secret, strict=True)
    ]
    return endpoints


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """The sandbox's configuration from its command line (and logging set up)."""
    parser = _parser()
    args = parser.parse_args(argv)
    endpoints = _endpoints(parser, args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    return Config(
        host=args.host,
        port=args.port,
        endpoints=endpoints,
        state_file=args.state_file,
        retry=RetryPolicy(
            args.webhook_retry_initial, args.webhook_retry_max, args.webhook_attempts
        ),
        save_interval=args.save_interval,
        rate_limit=args.rate_limit,
        endpoint_rate_limit=args.endpoint_rate_limit,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    sock = _bind(config.host, config.port)
    config.port = sock.getsockname()[1]
    app = create_app(config)
    server = _Server(
        uvicorn.Config(
            app,
            log_level=logging.getLogger().level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            http="httptools",
        )
    )
    host = f"[{config.host}]" if ":" in config.host else config.host
    server.ready_line = f"sandbox listening on http://{host}:{config.port}"
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
