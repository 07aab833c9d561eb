"""Load run: `customers.create` against the Stripe sandbox, through the official client.

Starts `python -m sandbox` on a free 127.0.0.1 port, drives N creates at concurrency C
with the async `stripe` client (or raw httpx form posts with `--client httpx`), prints
requests/s, p50/p99 latency and errors, and exits 0 if the rate reaches the target.

    .venv/bin/python bench/sandbox_customers.py [--requests 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import stripe

from devstack import supervisor
from devstack.supervisor import Sandbox


def start_sandbox(log_path: Path, timeout: float = 20.0) -> Sandbox:
    """The sandbox on a port the OS picks (no race for a "free" port)."""
    # Rate limits off: this measures the sandbox's own throughput, far beyond the
    # 25 requests per second Stripe allows a test-mode account.
    return supervisor.start_sandbox(args=["--rate-limit", "0"], log_file=log_path, timeout=timeout)


Call = Callable[[int], Awaitable[None]]
Client = tuple[Call, Callable[[], Awaitable[None]]]


async def drive(
    make_call: Callable[[], Client], total: int, concurrency: int, deadline: float
) -> tuple[list[float], int, float]:
    """`total` calls shared by `concurrency` workers; latencies, errors and seconds.

    Each worker has its own client (one keep-alive connection): httpcore's shared pool
    costs client CPU that grows with the number of waiting requests, which would measure
    the load generator rather than the sandbox.
    """
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, errors
        call, close = make_call()
        try:
            while next_index < total and time.monotonic() < deadline:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                try:
                    await call(index)
                except (stripe.StripeError, httpx.HTTPError, RuntimeError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
        finally:
            await close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - began


def stripe_call(url: str) -> Client:
    http_client = stripe.HTTPXClient(allow_sync_methods=False)
    client = stripe.StripeClient(
        "sk_test_bench", base_addresses={"api": url}, http_client=http_client
    )

    async def call(index: int) -> None:
        await client.v1.customers.create_async(
            params={"email": f"bench{index}@example.com", "metadata": {"n": str(index)}}
        )

    return call, http_client.close_async


def httpx_call(url: str) -> Client:
    http = httpx.AsyncClient(base_url=url, timeout=30.0)

    async def call(index: int) -> None:
        response = await http.post(
            "/v1/customers",
            data={"email": f"bench{index}@example.com", "metadata[n]": str(index)},
            headers={
                "Authorization": "Bearer sk_test_bench",
                "Idempotency-Key": f"bench-{time.time_ns()}-{index}",
            },
        )
        if response.status_code != 200:
            raise RuntimeError(response.text)

    return call, http.aclose


async def run(
    url: str, total: int, concurrency: int, client_kind: str, budget: float
) -> dict[str, float]:
    def make_call() -> Client:
        return stripe_call(url) if client_kind == "stripe" else httpx_call(url)

    await drive(make_call, min(200, total), concurrency, time.monotonic() + 30)  # warm-up
    latencies, errors, seconds = await drive(
        make_call, total, concurrency, time.monotonic() + budget
    )
    latencies.sort()
    count = len(latencies)
    return {
        "requests": count,
        "errors": errors,
        "seconds": seconds,
        "rate": count / seconds if seconds else 0.0,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000 if latencies else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client", choices=["stripe", "httpx"], default="stripe")
    parser.add_argument("--target", type=float, default=500.0, help="requests/s to pass")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds at most")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        sandbox = start_sandbox(Path(tmp) / "sandbox.log")
        try:
            result = asyncio.run(
                run(sandbox.url, args.requests, args.concurrency, args.client, args.budget)
            )
        finally:
            sandbox.stop()
    print(
        f"sandbox customers.create ({args.client} client, concurrency {args.concurrency}): "
        f"{result['requests']:.0f} ok, {result['errors']:.0f} errors in "
        f"{result['seconds']:.2f} s = {result['rate']:.0f} req/s; "
        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms "
        f"(target {args.target:.0f} req/s)"
    )
    return 0 if result["rate"] >= args.target and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
