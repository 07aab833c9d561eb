"""`onramp stripe check`, unchanged, against the sandbox: every row passes and
everything it made is gone (or archived) afterwards; a live key is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe

from tests.support.sandbox_process import sandbox_process

pytestmark = pytest.mark.slow


REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "sk_test_onramp_stripe_check"
ROWS = [
    "test clock",
    "customer on the test clock",
    "Express account",
    "account link",
    "catalog (product, two prices)",
    "Checkout Session",
    "card as default payment method",
    "subscription on the test clock",
    "renewal by advancing the clock",
    "price change",
    "authentication-required card",
    "clean-up",
]


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with sandbox_process() as url:
        yield url


def _onramp(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed command line, as a platform runs it (`onramp` is `onramp.cli:main`)."""
    return subprocess.run(
        [sys.executable, "-c", "from onramp.cli import main; main()", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_row_passes_against_the_sandbox_and_nothing_is_left(sandbox_url: str) -> None:
    done = _onramp("stripe", "check", STRIPE_SECRET_KEY=KEY, STRIPE_API_BASE=sandbox_url)
    print(done.stdout)  # noqa: T201 (the table, for whoever reads a failure)
    lines = done.stdout.strip().splitlines()
    rows = lines[:-1]
    assert [line[2:].split("  ")[0].strip() for line in rows] == ROWS, done.stderr
    assert all(line.startswith("✓ ") for line in rows), done.stdout
    assert lines[-1] == f"{len(ROWS)}/{len(ROWS)} passed"
    assert done.returncode == 0

    client = stripe.StripeClient(KEY, base_addresses={"api": sandbox_url})
    assert client.v1.customers.list().data == []
    assert client.v1.test_helpers.test_clocks.list().data == []
    assert client.v1.accounts.list().data == []
    assert client.v1.prices.list(params={"active": True}).data == []
    assert client.v1.products.list(params={"active": True}).data == []


def test_a_live_key_is_refused_before_any_request(sandbox_url: str) -> None:
    done = _onramp(
        "stripe", "check", STRIPE_SECRET_KEY="sk_live_not_here", STRIPE_API_BASE=sandbox_url
    )
    assert done.returncode == 2
    assert "STRIPE_SECRET_KEY: is a live key" in done.stderr
    assert "not_here" not in done.stderr + done.stdout
    requests = httpx.get(f"{sandbox_url}/_sandbox/requests").json()
    entries = requests["data"] if isinstance(requests, dict) else requests
    assert not [e for e in entries if "sk_live" in str(e)]
