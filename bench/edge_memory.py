"""Oversized requests against the API: answered in the error shape, memory unchanged.

Starts embedded Postgres and the API as a real uvicorn process (Temporal is not needed:
the API connects to it lazily), measures the API's resident memory (RSS, process and
children), then sends, one after the other:

- a 100 MB JSON body to `POST /v1/portal/set-password` with its Content-Length,
- the same 100 MB streamed chunked (no Content-Length: counted as it arrives),
- 8 MB of headers,
- a 5,000-deep JSON body,

and measures again after each. Before the body limit, the first took the API from 110 to
418 MB. Exit 0 when every answer is the expected 4xx and the RSS grew by less than
--max-growth-mib.

    .venv/bin/python bench/edge_memory.py [--mib 100] [--max-growth-mib 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.stack import free_port, rss_mib  # noqa: E402
from devstack import supervisor  # noqa: E402
from devstack.processes import ChildProcess  # noqa: E402

CHUNK = 1024 * 1024
TIMEOUT_SECONDS = 120.0


async def _stream(total: int) -> AsyncIterator[bytes]:
    yield b'{"token": "'
    filler = b"t" * CHUNK
    for _ in range(total // CHUNK):
        yield filler


async def _settle(pid: int) -> float:
    """RSS once the process has had a moment to return what it freed."""
    await asyncio.sleep(1.0)
    return rss_mib(pid)


async def run(mib: int) -> list[dict[str, object]]:
    directory = Path(tempfile.mkdtemp(prefix="onramp-edge-"))
    postgres = await asyncio.to_thread(
        supervisor.start_postgres, directory / "pgdata", keep_data=False
    )
    database_url = await postgres.database("onramp")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # lazily connected, never needed
        "ONRAMP_API_KEYS": "bench-client-key-0123456789:client:bench-client",
        "STRIPE_SECRET_KEY": "sk_test_onramp_bench",
        "STRIPE_WEBHOOK_SECRETS": "whsec_benchplatform0001",
        "ONRAMP_TOKEN_SECRET": "bench-token-secret-0123456789abcdef0123",
        "LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, object]] = []
    api: ChildProcess | None = None
    try:
        api = await asyncio.to_thread(
            supervisor.start_api, port, env, log_file=directory / "api.log"
        )
        size = mib * 1024 * 1024
        body = b'{"token": "' + b"t" * size + b'"}'
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_SECONDS) as client:
            # Warm up the route (imports, pool) so the first figure is the resting one.
            await client.post("/v1/portal/set-password", json={"token": "x" * 20, "password": "y"})
            baseline = await _settle(api.pid)
            rows.append({"request": "at rest", "status": None, "rss_mib": round(baseline, 1)})

            async def measure(name: str, send: object) -> None:
                started = time.monotonic()
                try:
                    response = await send  # type: ignore[misc]
                    status: object = response.status_code
                    code = response.json().get("error", {}).get("code")
                except httpx.HTTPError as error:
                    status, code = type(error).__name__, None
                rows.append(
                    {
                        "request": name,
                        "status": status,
                        "code": code,
                        "seconds": round(time.monotonic() - started, 2),
                        "rss_mib": round(await _settle(api.pid), 1),
                    }
                )

            headers = {"Content-Type": "application/json"}
            await measure(
                f"{mib} MB body, Content-Length",
                client.post("/v1/portal/set-password", content=body, headers=headers),
            )
            del body
            await measure(
                f"{mib} MB body, chunked",
                client.post("/v1/portal/set-password", content=_stream(size), headers=headers),
            )
            await measure(
                "8 MB of headers",
                client.get("/healthz", headers={"X-Padding": "p" * (8 * 1024 * 1024)}),
            )
            await measure(
                "5,000-deep JSON",
                client.post(
                    "/v1/portal/set-password",
                    content=b"[" * 5000 + b"]" * 5000,
                    headers=headers,
                ),
            )
    finally:
        if api is not None:
            api.stop(timeout=10)
        postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100, help="size of the large bodies")
    parser.add_argument("--max-growth-mib", type=float, default=20.0)
    args = parser.parse_args()
    rows = asyncio.run(run(args.mib))
    baseline = float(rows[0]["rss_mib"])  # type: ignore[arg-type]
    print(f"{'request':<28} {'status':>8} {'code':<20} {'seconds':>8} {'API RSS MiB':>12}")
    for row in rows:
        print(
            f"{row['request']:<28} {row['status']!s:>8} {row.get('code') or '':<20} "
            f"{row.get('seconds', ''):>8} {row['rss_mib']:>12}"
        )
    peak = max(float(row["rss_mib"]) for row in rows)  # type: ignore[arg-type]
    growth = peak - baseline
    expected = {413, 431, 422}
    refused = all(row["status"] in expected for row in rows[1:])
    print(f"RSS at rest {baseline:.1f} MiB, highest after a request {peak:.1f} MiB (+{growth:.1f})")
    if not refused or growth >= args.max_growth_mib:
        print("FAILED: an answer was not the expected 4xx, or memory grew", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
