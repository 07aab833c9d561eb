"""Fault run: Temporal frozen (SIGSTOP) while Stripe events arrive.

On the bench stack (every process separate: Postgres, the Temporal dev server, the
sandbox, the worker, the API), Temporal is frozen with SIGSTOP (it accepts connections
and never answers), then `--webhooks` signed events (`invoice.paid` for existing users:
signal-with-start of `subscription-<user>`) are posted at once while a reader polls
`GET /v1/users/{id}/setup-status`. Temporal is resumed after `--freeze` seconds. The
run prints every webhook's answer time, the reads' p50/p99 during the freeze, and how
long after SIGCONT the last event was dispatched — by the API's own dispatcher: the
events are posted once (no redelivery) and no replay runs. Bounded in count and time.

    .venv/bin/python bench/inbox_outage.py [--webhooks 50] [--freeze 20]

Pass: every webhook 200 within 1 s, setup-status p99 under 200 ms, every event
dispatched within 30 s of SIGCONT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stack import CLIENT_KEY, WEBHOOK_SECRETS, BenchStack  # noqa: E402
from devstack.stripe_events import create_user, event_body, event_id_of, sign, stripe_id  # noqa: E402

PATH = "/v1/webhooks/stripe"


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def _read_while(
    client: httpx.AsyncClient, user_ids: list[str], stop: asyncio.Event
) -> tuple[list[float], int]:
    """Setup-status reads, one after another per reader, until `stop`."""
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}

    async def reader(offset: int) -> None:
        nonlocal errors
        position = offset
        while not stop.is_set():
            user_id = user_ids[position % len(user_ids)]
            position += 1
            started = time.perf_counter()
            response = await client.get(f"/v1/users/{user_id}/setup-status", headers=headers)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1
            await asyncio.sleep(0.02)

    await asyncio.gather(*(reader(index) for index in range(4)))
    return latencies, errors


async def run(args: argparse.Namespace) -> int:
    async with BenchStack.running(keep=args.keep) as stack:
        await stack.wait_ready()
        import asyncpg

        db = await asyncpg.connect(stack.database_url)
        try:
            customers = [stripe_id("cus") for _ in range(args.webhooks)]
            users = [await create_user(db, customer=customer) for customer in customers]  # type: ignore[arg-type]
            bodies = [
                event_body(
                    "invoice.paid", {"id": stripe_id("in"), "object": "invoice", "customer": c}
                )
                for c in customers
            ]
            ids = [event_id_of(body) for body in bodies]
            signed = [sign(body, WEBHOOK_SECRETS[0]) for body in bodies]
            temporal = stack.children["temporal"]
            limits = httpx.Limits(max_connections=args.webhooks + 8)
            async with httpx.AsyncClient(
                base_url=stack.api_url, timeout=30, limits=limits
            ) as client:
                temporal.signal(signal.SIGSTOP)
                frozen_at = time.monotonic()
                try:
                    stop = asyncio.Event()
                    reads = asyncio.create_task(_read_while(client, users, stop))
                    await asyncio.sleep(0.5)

                    async def post(body: bytes, headers: dict[str, str]) -> tuple[int, float]:
                        started = time.perf_counter()
                        response = await client.post(PATH, content=body, headers=headers)
                        return response.status_code, time.perf_counter() - started

                    answers = await asyncio.gather(
                        *(post(body, headers) for body, headers in zip(bodies, signed, strict=True))
                    )
                    # Keep reading while the dispatcher's calls hang on the frozen server.
                    await asyncio.sleep(max(0.0, args.freeze - (time.monotonic() - frozen_at)))
                    stop.set()
                    read_latencies, read_errors = await reads
                    pending = await db.fetchval(
                        "SELECT count(*) FROM webhook_events "
                        "WHERE event_id = ANY($1::text[]) AND status = 'pending'",
                        ids,
                    )
                finally:
                    temporal.signal(signal.SIGCONT)
                resumed_at = time.monotonic()
                dispatched_after = float("nan")
                while time.monotonic() - resumed_at < args.drain_limit:
                    done = await db.fetchval(
                        "SELECT count(*) FROM webhook_events "
                        "WHERE event_id = ANY($1::text[]) AND status = 'dispatched'",
                        ids,
                    )
                    if done == len(ids):
                        dispatched_after = time.monotonic() - resumed_at
                        break
                    await asyncio.sleep(0.1)
                attempts = await db.fetchval(
                    "SELECT max(attempts) FROM webhook_events WHERE event_id = ANY($1::text[])",
                    ids,
                )
        finally:
            await db.close()

    statuses = [status for status, _ in answers]
    seconds = [elapsed for _, elapsed in answers]
    ok_answers = statuses.count(200)
    slowest = max(seconds)
    read_p50 = _percentile(read_latencies, 0.5)
    read_p99 = _percentile(read_latencies, 0.99)
    print(
        f"inbox outage: Temporal frozen (SIGSTOP) {args.freeze:.0f} s, {args.webhooks} "
        f"concurrent webhooks, {os.cpu_count()} CPUs, every process on this machine"
    )
    print(
        f"  webhooks: {ok_answers}/{len(statuses)} answered 200, slowest {slowest * 1000:.0f} ms, "
        f"p50 {_percentile(seconds, 0.5):.0f} ms; {pending} still pending while frozen"
    )
    print(
        f"  setup-status during the freeze: {len(read_latencies)} reads, {read_errors} errors, "
        f"p50 {read_p50:.1f} ms, p99 {read_p99:.1f} ms"
    )
    print(
        f"  after SIGCONT: every event dispatched in {dispatched_after:.1f} s "
        f"(no redelivery, no replay; most attempts for one event: {attempts})"
    )
    passed = (
        ok_answers == len(statuses)
        and slowest < 1.0
        and read_errors == 0
        and read_p99 < 200
        and dispatched_after <= 30
    )
    print(f"  {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--webhooks", type=int, default=50)
    parser.add_argument("--freeze", type=float, default=20.0, help="seconds Temporal is frozen")
    parser.add_argument("--drain-limit", type=float, default=60.0, help="seconds, after SIGCONT")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
