"""Reconciliation at scale: 10,000 users' worth of Stripe objects, one run, time reported.

Starts the bench stack (bench/stack.py: Postgres, Temporal, the sandbox with its
25 requests/s limit, the worker, the API), seeds the sandbox through its planting calls
(customers for every user, subscriptions for some, Connect accounts for a few: no
events, so no webhook traffic) and Postgres with the matching users and billing mirrors,
plants a little drift, runs one `reconcile` through Temporal and prints how long it
took, what it listed, what it found and how often the sandbox refused a request for its
rate limit (the run passes with none and within its budget).

    .venv/bin/python bench/reconcile_scale.py [--users 10000] [--drift 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.stack import TASK_QUEUE, BenchStack  # noqa: E402
from onramp.temporal import connect_temporal  # noqa: E402
from workflows.contracts.reconcile import (  # noqa: E402
    RECONCILE,
    ReconcileInput,
    ReconcilePolicy,
    reconcile_workflow_id,
)

# Seeded objects are this old: past any grace period.
AGE_SECONDS = 7200
BATCH = 2000
SUBSCRIBED_SHARE = 0.3
ACCOUNT_SHARE = 0.1


async def _plant(sandbox: httpx.AsyncClient, kind: str, items: list[dict[str, Any]]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(items), BATCH):
        response = await sandbox.post(
            f"/_sandbox/plant/{kind}", json={kind: items[start : start + BATCH]}
        )
        response.raise_for_status()
        ids.extend(response.json()["ids"])
    return ids


async def seed(stack: BenchStack, users: int) -> dict[str, Any]:
    """Every user with a saved customer; some subscribed (mirrored), a few with an account."""
    user_ids = [str(uuid.uuid4()) for _ in range(users)]
    subscribed = user_ids[: int(users * SUBSCRIBED_SHARE)]
    with_account = user_ids[-int(users * ACCOUNT_SHARE) :]
    price = stack.env["STRIPE_PRICE_PRO_MONTHLY"]
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=120) as sandbox:
        now = int((await sandbox.get("/_sandbox/clock")).json()["now"])
        created = now - AGE_SECONDS
        meta = [{"user_id": uid, "generation": "0"} for uid in user_ids]
        customers = await _plant(
            sandbox, "customers", [{"metadata": m, "created": created} for m in meta]
        )
        customer_of = dict(zip(user_ids, customers, strict=True))
        subs = await _plant(
            sandbox,
            "subscriptions",
            [
                {"customer": customer_of[uid], "price": price, "metadata": {"user_id": uid},
                 "created": created}
                for uid in subscribed
            ],
        )  # fmt: skip
        accounts = await _plant(
            sandbox,
            "accounts",
            [{"metadata": {"user_id": uid, "generation": "0"}, "created": created}
             for uid in with_account],
        )  # fmt: skip
    account_of = dict(zip(with_account, accounts, strict=True))
    connection = await asyncpg.connect(stack.database_url)
    try:
        await connection.copy_records_to_table(
            "users",
            columns=["id", "email", "username", "status", "stripe_customer_id",
                     "connect_account_id", "tier"],
            records=[
                (uuid.UUID(uid), f"user{i}@bench.example", "bench", "active", customer_of[uid],
                 account_of.get(uid), "pro" if i < len(subscribed) else "free")
                for i, uid in enumerate(user_ids)
            ],
        )  # fmt: skip
        await connection.copy_records_to_table(
            "billing",
            columns=["user_id", "tier", "status", "billing_cycle", "stripe_subscription_id",
                     "stripe_price_id"],
            records=[
                (uuid.UUID(uid), "pro", "active", "monthly", sub, price)
                for uid, sub in zip(subscribed, subs, strict=True)
            ],
        )  # fmt: skip
    finally:
        await connection.close()
    return {"users": user_ids, "subscriptions": subs, "customers": customers, "now": now}


async def plant_drift(stack: BenchStack, seeded: dict[str, Any], count: int) -> None:
    """`count` of each: a subscription changed without its webhook, a saved customer
    deleted, an orphan customer made by hand."""
    enterprise = stack.env["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=60) as sandbox:
        for sub in seeded["subscriptions"][:count]:
            changed = await sandbox.post(
                f"/_sandbox/plant/subscriptions/{sub}", json={"price": enterprise}
            )
            changed.raise_for_status()
        for customer in seeded["customers"][-count:]:
            (await sandbox.post(f"/_sandbox/plant/objects/{customer}/delete")).raise_for_status()
        await _plant(
            sandbox,
            "customers",
            [{"metadata": {"user_id": uid}, "created": seeded["now"] - AGE_SECONDS}
             for uid in seeded["users"][:count]],
        )  # fmt: skip


async def run(users: int, drift: int) -> int:
    async with BenchStack.running() as stack:
        await stack.wait_ready()
        began = time.perf_counter()
        seeded = await seed(stack, users)
        await plant_drift(stack, seeded, drift)
        print(f"seeded {users} users in {time.perf_counter() - began:.1f} s")
        client = await connect_temporal(stack.temporal_address, "default")
        started = time.perf_counter()
        result = await client.execute_workflow(
            RECONCILE.name,
            ReconcileInput(),
            id=reconcile_workflow_id(f"bench-{uuid.uuid4().hex[:8]}"),
            task_queue=TASK_QUEUE,
            result_type=RECONCILE.result,
        )
        seconds = time.perf_counter() - started
        return await report(stack, result.run_id, result.complete, seconds, drift)


async def report(stack: BenchStack, run_id: str, complete: bool, seconds: float, drift: int) -> int:
    connection = await asyncpg.connect(stack.database_url)
    try:
        row = await connection.fetchrow(
            "SELECT objects_checked, stripe_requests, repairs, "
            "extract(epoch FROM finished_at - started_at) AS took "
            "FROM reconcile_runs WHERE id = $1",
            run_id,
        )
        kinds = await connection.fetch(
            "SELECT kind, count(*) AS n FROM reconcile_findings WHERE resolved_at IS NULL "
            "GROUP BY kind ORDER BY kind"
        )
    finally:
        await connection.close()
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30) as sandbox:
        stats = (await sandbox.get("/_sandbox/stats")).json()
    limited = sum(stats["rate_limited"].values())
    budget = ReconcilePolicy().budget_seconds
    assert row is not None
    found = {str(k["kind"]): int(k["n"]) for k in kinds}
    print(
        f"reconcile run: {'complete' if complete else 'INCOMPLETE'} in {seconds:.1f} s "
        f"(run row: {float(row['took']):.1f} s; budget {budget:.0f} s), "
        f"{row['objects_checked']} objects checked with {row['stripe_requests']} Stripe "
        f"requests ({row['stripe_requests'] / seconds:.1f}/s), findings {found}, "
        f"{row['repairs']} repairs, rate_limit refusals {limited}"
    )
    expected = {"drift": drift, "missing": drift, "orphan": drift} if drift else {}
    ok = complete and limited == 0 and seconds < budget and found == expected
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--drift", type=int, default=10, help="planted cases of each kind")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.users, args.drift)))


if __name__ == "__main__":
    main()
