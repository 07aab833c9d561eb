"""Load run: signed Stripe events at `POST /v1/webhooks/stripe`, beside a bare endpoint.

Starts embedded Postgres, a Temporal dev server and an in-process receiver worker (the
test receivers, registered under the real workflow type names), then serves two apps
with uvicorn on 127.0.0.1, one process each:

- the onramp API: verify, store in the inbox, answer (its inbox dispatcher then routes
  and signals-with-start in the background, in the same process);
- a bare FastAPI endpoint that only reads the body and verifies the signature.

Both get the same signed events at the same concurrency; the run prints accepted
webhooks/s and p50/p99 latency of each and their ratio, then waits until the inbox is
drained (every event `dispatched`, reported as the seconds after the last answer) and
checks that each was applied once. Bounded in count and time.

    .venv/bin/python bench/webhook_ingress.py [--events 2000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError
from temporalio.worker import Worker

from api.webhooks.signature import InvalidSignature, verify_signature
from devstack import supervisor
from devstack.processes import ChildProcess

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, only bench/ is on the path. The receivers and event helpers are
# devstack's, shared with the tests (one definition of "a signed Stripe event" and "a
# receiver").
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stack import TOKEN_SECRET, free_port  # noqa: E402
from devstack.stripe_events import (  # noqa: E402
    create_user,
    event_body,
    sign,
    stripe_id,
    subscription_object,
)
from devstack.stripe_receivers import RECEIVERS, SubscriptionReceiver  # noqa: E402

SECRETS = ("whsec_benchplatform0001", "whsec_benchconnect0002")
STRIPE_KEY = "sk_test_onramp_bench"
API_KEY = "bench-client-key-0123456789:client:bench"
PATH = "/v1/webhooks/stripe"


def baseline_app() -> FastAPI:
    """The floor: read the body and verify `Stripe-Signature`, nothing else."""
    app = FastAPI()

    @app.post("/webhook")
    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify_signature(body.decode(), request.headers.get("stripe-signature"), SECRETS)
        except InvalidSignature:
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        return JSONResponse({"received": True})

    return app


@dataclass
class RunFigures:
    name: str
    accepted: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _serve(
    name: str, factory: str, env: dict[str, str], log_dir: Path
) -> tuple[ChildProcess, str]:
    """`uvicorn <factory> --factory` on a free 127.0.0.1 port; wait for /healthz or /docs."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]  # fmt: skip
    child = ChildProcess(name, argv, env=env, cwd=ROOT, log_file=log_dir / f"{name}.log").start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        while time.monotonic() < deadline:
            if child.exit_code() is not None:
                raise RuntimeError(f"{name} exited: see {log_dir / f'{name}.log'}")
            try:
                if (await client.get("/openapi.json")).status_code == 200:
                    return child, url
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    child.stop()
    raise RuntimeError(f"{name} did not start within 30 s")


async def _drive(
    name: str, url: str, path: str, bodies: list[bytes], concurrency: int, deadline: float
) -> RunFigures:
    """Post every body once with `concurrency` connections; a 200 counts as accepted."""
    latencies: list[float] = []
    errors = 0
    # Signed before the clock starts, so the figures are the server's, not the signer's.
    queue = [(body, sign(body, SECRETS[0])) for body in reversed(bodies)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while queue and time.monotonic() < deadline:
                body, headers = queue.pop()
                started = time.perf_counter()
                try:
                    response = await client.post(path, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return RunFigures(name, len(latencies), errors, seconds, latencies)


async def _mean_dispatch_ms(api_url: str) -> float:
    """Mean time of the API's Temporal call per webhook, from its /metrics."""
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    sums = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        for kind in sums:
            if line.startswith(f"onramp_webhook_dispatch_seconds_{kind}{{"):
                sums[kind] += float(line.rpartition(" ")[2])
    return sums["sum"] / sums["count"] * 1000 if sums["count"] else float("nan")


async def _drained(pool: asyncpg.Pool, deadline: float) -> float:
    """Seconds until no stored event is `pending` (the dispatcher caught up)."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        pending = await pool.fetchval(
            "SELECT count(*) FROM webhook_events WHERE status = 'pending'"
        )
        if pending == 0:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def _events(customers: list[str], count: int) -> list[bytes]:
    kinds = ("customer.subscription.updated", "invoice.paid", "invoice.created")
    bodies = []
    for index in range(count):
        customer = customers[index % len(customers)]
        kind = kinds[index % len(kinds)]
        obj = (
            subscription_object(customer)
            if kind.startswith("customer.")
            else {"id": stripe_id("in"), "object": "invoice", "customer": customer}
        )
        bodies.append(event_body(kind, obj))
    return bodies


@asynccontextmanager
async def _postgres(directory: Path) -> AsyncIterator[str]:
    server = await asyncio.to_thread(
        supervisor.start_postgres, directory / "pgdata", keep_data=False
    )
    try:
        yield await server.database("onramp_bench")
    finally:
        server.stop()


async def run(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.time_limit
    directory = Path(tempfile.mkdtemp(prefix="onramp-bench-"))
    children: list[ChildProcess] = []
    try:
        async with _postgres(directory) as database_url:
            temporal = supervisor.temporal_environment(directory)
            env_ = await temporal.__aenter__()
            try:
                task_queue = f"onramp-bench-{uuid.uuid4().hex[:8]}"
                pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
                assert pool is not None
                customers = [stripe_id("cus") for _ in range(args.users)]
                users = [await create_user(pool, customer=customer) for customer in customers]
                env = {
                    **os.environ,
                    "DATABASE_URL": database_url,
                    "TEMPORAL_ADDRESS": env_.client.service_client.config.target_host,
                    "TEMPORAL_TASK_QUEUE": task_queue,
                    "ONRAMP_API_KEYS": API_KEY,
                    "STRIPE_SECRET_KEY": STRIPE_KEY,
                    "STRIPE_WEBHOOK_SECRETS": ",".join(SECRETS),
                    "ONRAMP_TOKEN_SECRET": TOKEN_SECRET,
                    "LOG_LEVEL": "INFO",
                }
                api_port = free_port()
                api = await asyncio.to_thread(
                    supervisor.start_api, api_port, env, log_file=directory / "api.log"
                )
                children.append(api)
                api_url = f"http://127.0.0.1:{api_port}"
                bare, bare_url = await _serve(
                    "bare", "bench.webhook_ingress:baseline_app", env, directory
                )
                children.append(bare)

                async with Worker(env_.client, task_queue=task_queue, workflows=RECEIVERS):
                    bodies = _events(customers, args.events)
                    warm = _events(customers, args.concurrency * 2)
                    await _drive("warm-up", bare_url, "/webhook", warm, args.concurrency, deadline)
                    await _drive("warm-up", api_url, PATH, warm, args.concurrency, deadline)
                    bare_run = await _drive(
                        "bare verify", bare_url, "/webhook", bodies, args.concurrency, deadline
                    )
                    api_run = await _drive(
                        "onramp ingress", api_url, PATH, bodies, args.concurrency, deadline
                    )
                    drain_seconds = await _drained(pool, deadline)
                    temporal_ms = await _mean_dispatch_ms(api_url)
                    stored = await pool.fetchval(
                        "SELECT count(*) FROM webhook_events WHERE status = 'dispatched'"
                    )
                    applied, signals = 0, 0
                    for user_id in users:
                        handle = env_.client.get_workflow_handle(f"subscription-{user_id}")
                        try:
                            applied += len(await handle.query(SubscriptionReceiver.applied))
                            signals += await handle.query(SubscriptionReceiver.signals_received)
                        except RPCError:  # never dispatched (the run reports it incomplete)
                            continue
                await pool.close()
            finally:
                for child in reversed(children):
                    child.stop()
                await temporal.__aexit__(None, None, None)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    _report(args, bare_run, api_run, stored, applied, signals, len(warm))
    print(
        f"inbox drained {drain_seconds:.1f} s after the last answer; the dispatcher's "
        f"Temporal call (signal-with-start), mean per event: {temporal_ms:.1f} ms"
    )
    complete = api_run.accepted == args.events and applied == stored == args.events + len(warm)
    return 0 if complete else 1


def _report(
    args: argparse.Namespace,
    bare: RunFigures,
    api: RunFigures,
    stored: int,
    applied: int,
    signals: int,
    warm: int,
) -> None:
    print(
        f"webhook ingress: {args.events} signed events, concurrency {args.concurrency}, "
        f"{args.users} users, loopback, uvicorn 1 process each, {os.cpu_count()} CPUs"
    )
    print(f"{'':18}{'accepted/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'seconds':>9}")
    for figures in (bare, api):
        print(
            f"{figures.name:18}{figures.rate:12.0f}{figures.percentile(0.5):10.1f}"
            f"{figures.percentile(0.99):10.1f}{figures.errors:8d}{figures.seconds:9.1f}"
        )
    print(
        f"{'ingress / bare':18}{api.rate / bare.rate if bare.rate else 0:11.2f}x"
        f"{api.percentile(0.5) / bare.percentile(0.5):9.1f}x"
        f"{api.percentile(0.99) / bare.percentile(0.99):9.1f}x"
    )
    print(
        f"inbox: {stored} dispatched (incl. {warm} warm-up); receivers applied {applied} "
        f"distinct events from {signals} signals"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds, overall")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
