"""Run the Stripe sandbox (`python -m sandbox`) as a subprocess, for any test package.

    with sandbox_process("--webhook-url", url, "--webhook-secret", secret) as base_url:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": base_url})

    async with sandbox_process_async() as base_url: ...

The process is started by `devstack.supervisor.start_sandbox`, as `onramp dev` and the
benchmarks start it: 127.0.0.1 on a port the OS picks (`--port 0`, so parallel test runs
never collide), ready once `/_sandbox/health` answers; stopped on exit (SIGTERM, then
SIGKILL after `stop_timeout`). Startup failures raise `StackError` with the sandbox's
output.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from devstack.supervisor import start_sandbox

__all__ = ["sandbox_process", "sandbox_process_async"]


@contextlib.contextmanager
def sandbox_process(
    *args: str, start_timeout: float = 20.0, stop_timeout: float = 10.0
) -> Iterator[str]:
    """A running sandbox (extra CLI `args` appended); yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="onramp-sandbox-") as tmp:
        sandbox = start_sandbox(
            args=args, log_file=Path(tmp) / "sandbox.log", timeout=start_timeout
        )
        try:
            yield sandbox.url
        finally:
            sandbox.stop(stop_timeout)


@contextlib.asynccontextmanager
async def sandbox_process_async(
    *args: str, start_timeout: float = 20.0, stop_timeout: float = 10.0
) -> AsyncIterator[str]:
    """The same for async code: starting and stopping run in a worker thread."""
    with tempfile.TemporaryDirectory(prefix="onramp-sandbox-") as tmp:
        sandbox = await asyncio.to_thread(
            start_sandbox, args=args, log_file=Path(tmp) / "sandbox.log", timeout=start_timeout
        )
        try:
            yield sandbox.url
        finally:
            await asyncio.to_thread(sandbox.stop, stop_timeout)
