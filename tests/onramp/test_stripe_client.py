"""The Stripe client's pacing: one pacer per account and process, a rate below Stripe's
limit for the key's mode, and the worker setting that changes it."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from onramp.settings import WorkerSettings
from onramp.stripe_client import PacedHTTPXClient, RequestPacer, build_stripe_client


def _pacer_of(key: str, base: str | None, rate: float | None = None) -> RequestPacer:
    client = build_stripe_client(key, base, max_requests_per_second=rate)
    http = client._requestor._client  # the library keeps its HTTP client private
    assert isinstance(http, PacedHTTPXClient)
    return http.pacer


def test_clients_of_one_account_share_a_pacer_below_stripe_limits() -> None:
    test_key = f"sk_test_{uuid.uuid4().hex}"
    first = _pacer_of(test_key, "http://127.0.0.1:1")
    assert _pacer_of(test_key, "http://127.0.0.1:1") is first
    assert _pacer_of(test_key, "http://127.0.0.1:2") is not first
    assert _pacer_of(f"sk_test_{uuid.uuid4().hex}", "http://127.0.0.1:1") is not first
    assert first.rate == 20.0  # Stripe allows 25 per second in test mode
    live = _pacer_of(f"sk_live_{uuid.uuid4().hex}", None)
    assert live.rate == 80.0  # and 100 in live mode
    # A client asking for less slows the whole account down, never the other way.
    _pacer_of(test_key, "http://127.0.0.1:1", rate=5)
    assert first.rate == 5.0
    _pacer_of(test_key, "http://127.0.0.1:1", rate=50)
    assert first.rate == 5.0


def test_worker_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_settings")
    monkeypatch.setenv("ONRAMP_TOKEN_SECRET", "t" * 40)
    assert WorkerSettings().stripe_max_requests_per_second is None
    monkeypatch.setenv("STRIPE_MAX_REQUESTS_PER_SECOND", "12.5")
    assert WorkerSettings().stripe_max_requests_per_second == 12.5
    monkeypatch.setenv("STRIPE_MAX_REQUESTS_PER_SECOND", "0")
    with pytest.raises(ValidationError):
        WorkerSettings()
