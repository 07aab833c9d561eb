"""Start-up against an unreachable Postgres or Temporal: one clear line, no traceback.

Finding 10: an unreachable Postgres or Temporal at start ended in a raw traceback. Each
process now retries for STARTUP_WAIT_SECONDS, then prints one line naming the setting
and the address and exits 1. The processes are the real ones (`uvicorn
api.app:create_app --factory`, `python -m worker`), started as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.support.harness import (
    API_KEYS,
    STRIPE_TEST_KEY,
    TOKEN_SECRET,
    WEBHOOK_SECRETS,
    temporal_address,
)

pytestmark = pytest.mark.slow


ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _environment(**values: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ONRAMP_API_KEYS": API_KEYS,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_WEBHOOK_SECRETS": ",".join(WEBHOOK_SECRETS),
        "ONRAMP_TOKEN_SECRET": TOKEN_SECRET,
        "STARTUP_WAIT_SECONDS": "1",
        "LOG_LEVEL": "ERROR",
        **values,
    }


async def _run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, (stdout + stderr).decode()


async def test_the_api_names_an_unreachable_postgres_and_exits(
    temporal_env: WorkflowEnvironment,
) -> None:
    port = _closed_port()
    code, output = await _run(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", "0"],
        _environment(
            DATABASE_URL=f"postgresql://onramp:secret-password@127.0.0.1:{port}/onramp",
            TEMPORAL_ADDRESS=temporal_address(temporal_env),
        ),
    )
    assert code == 1, output
    assert f"onramp api: cannot reach Postgres at 127.0.0.1:{port} (DATABASE_URL)" in output
    assert "Traceback" not in output
    assert "secret-password" not in output


async def test_the_worker_names_an_unreachable_temporal_and_exits(database_url: str) -> None:
    port = _closed_port()
    code, output = await _run(
        [sys.executable, "-m", "worker"],
        _environment(DATABASE_URL=database_url, TEMPORAL_ADDRESS=f"127.0.0.1:{port}"),
    )
    assert code == 1, output
    assert f"onramp worker: cannot reach Temporal at 127.0.0.1:{port} (TEMPORAL_ADDRESS)" in output
    assert "Traceback" not in output


async def test_the_worker_names_an_unreachable_postgres_and_exits(
    temporal_env: WorkflowEnvironment,
) -> None:
    port = _closed_port()
    code, output = await _run(
        [sys.executable, "-m", "worker"],
        _environment(
            DATABASE_URL=f"postgresql://onramp:secret-password@127.0.0.1:{port}/onramp",
            TEMPORAL_ADDRESS=temporal_address(temporal_env),
        ),
    )
    assert code == 1, output
    assert f"onramp worker: cannot reach Postgres at 127.0.0.1:{port} (DATABASE_URL)" in output
    assert "Traceback" not in output
    assert "secret-password" not in output


async def test_migrate_names_an_unreachable_postgres_and_exits() -> None:
    port = _closed_port()
    code, output = await _run(
        [str(Path(sys.executable).parent / "onramp"), "migrate"],
        _environment(DATABASE_URL=f"postgresql://onramp:secret-password@127.0.0.1:{port}/o"),
    )
    assert code == 1, output
    assert f"onramp migrate: cannot reach Postgres at 127.0.0.1:{port} (DATABASE_URL)" in output
    assert "Traceback" not in output and "secret-password" not in output
