"""Run the Stripe sandbox (`python -m sandbox`) as a subprocess, for any test package.

    with sandbox_process("--webhook-url", url, "--webhook-secret", secret) as base_url:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": base_url})

    async with sandbox_process_async() as base_url: ...

The sandbox binds 127.0.0.1 on a port the OS picks (`--port 0`, so parallel test runs
never collide), the helper waits for `/_sandbox/health`, yields the base URL and stops
the process on exit (SIGTERM, then SIGKILL after `stop_timeout`). Startup failures raise
`RuntimeError` with the sandbox's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
READY = "sandbox listening on "

__all__ = ["sandbox_process", "sandbox_process_async"]


def _start(
    args: tuple[str, ...], log_path: Path, timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", "0", *args],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline and process.poll() is None:
        if url is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    url = line[len(READY) :].strip()
        if url is not None:
            try:
                if httpx.get(f"{url}/_sandbox/health", timeout=1.0).status_code == 200:
                    return process, url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    _stop(process, 2.0)
    raise RuntimeError(
        f"the sandbox did not become healthy within {timeout} s:\n"
        + log_path.read_text(errors="replace")
    )


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sandbox_process(
    *args: str, start_timeout: float = 20.0, stop_timeout: float = 10.0
) -> Iterator[str]:
    """A running sandbox (extra CLI `args` appended); yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="onramp-sandbox-") as tmp:
        process, url = _start(args, Path(tmp) / "sandbox.log", start_timeout)
        try:
            yield url
        finally:
            _stop(process, stop_timeout)


@contextlib.asynccontextmanager
async def sandbox_process_async(
    *args: str, start_timeout: float = 20.0, stop_timeout: float = 10.0
) -> AsyncIterator[str]:
    """The same for async code: starting and stopping run in a worker thread."""
    with tempfile.TemporaryDirectory(prefix="onramp-sandbox-") as tmp:
        process, url = await asyncio.to_thread(
            _start, args, Path(tmp) / "sandbox.log", start_timeout
        )
        try:
            yield url
        finally:
            await asyncio.to_thread(_stop, process, stop_timeout)
