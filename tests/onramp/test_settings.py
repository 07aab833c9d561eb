"""Settings are typed, validated, and explain every bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from onramp.settings import ApiSettings, WorkerSettings, describe_validation_error, parse_api_keys


def test_api_keys_parse_scope_and_name() -> None:
    keys = parse_api_keys("client-key-0123456789:client, admin-key-0123456789:admin:ops-alice")
    assert [(key.scope, key.name) for key in keys] == [
        ("client", keys[0].name),
        ("admin", "ops-alice"),
    ]
    assert keys[0].name.startswith("key-") and len(keys[0].name) == 12
    assert keys[1].key.get_secret_value() == "admin-key-0123456789"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("client-key-0123456789:root", "scope must be 'client' or 'admin'"),
        ("short:client", "at least 16 characters"),
        ("no-scope-here-0123456789", "must look like key:scope"),
        (" , ", "at least one key is required"),
    ],
)
def test_api_keys_refuse_bad_entries(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_api_keys(raw)


def test_every_invalid_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL", "TEMPORAL_ADDRESS", "STRIPE_SECRET_KEY", "ONRAMP_API_KEYS",
        "ONRAMP_TOKEN_SECRET",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "no-port")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "pk_test_publishable")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_a,not-a-secret")
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    message = describe_validation_error(caught.value)
    assert "DATABASE_URL: must be a postgresql:// URL" in message
    assert "TEMPORAL_ADDRESS: must be host:port" in message
    assert "STRIPE_SECRET_KEY: must be a Stripe secret key" in message
    assert "STRIPE_WEBHOOK_SECRETS: every secret must start with whsec_" in message
    assert "ONRAMP_API_KEYS: is required but not set" in message
    assert "ONRAMP_TOKEN_SECRET: is required but not set" in message
    # Secrets never appear in the explanation.
    assert "pk_test_publishable" not in message


def test_settings_read_comma_lists_and_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_abc123")
    monkeypatch.setenv("ONRAMP_API_KEYS", "client-key-0123456789:client")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_one, whsec_two")
    monkeypatch.setenv("ONRAMP_TOKEN_SECRET", "a-token-secret-of-at-least-32-chars!")
    settings = ApiSettings()
    assert settings.stripe_livemode is True
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == [
        "whsec_one",
        "whsec_two",
    ]
    worker = WorkerSettings()
    assert worker.stripe_api_base is None
    assert "abc123" not in repr(worker)


def test_connect_capabilities_are_a_checked_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_abc123")
    monkeypatch.setenv("ONRAMP_TOKEN_SECRET", "a-token-secret-of-at-least-32-chars!")
    assert WorkerSettings().connect_capabilities == ["card_payments", "transfers"]
    monkeypatch.setenv("CONNECT_CAPABILITIES", " transfers ")
    assert WorkerSettings().connect_capabilities == ["transfers"]
    for bad, message in (("transfers,teleport_payments", "teleport_payments"), (" , ", "one")):
        monkeypatch.setenv("CONNECT_CAPABILITIES", bad)
        with pytest.raises(ValidationError) as excinfo:
            WorkerSettings()
        described = describe_validation_error(excinfo.value)
        assert "CONNECT_CAPABILITIES" in described and message in described


def test_test_clocks_need_a_test_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("ONRAMP_TOKEN_SECRET", "a-token-secret-of-at-least-32-chars!")
    monkeypatch.setenv("STRIPE_TEST_CLOCKS", "true")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_abc123")
    assert WorkerSettings().stripe_test_clocks is True
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_live_abc123")
    with pytest.raises(ValidationError) as caught:
        WorkerSettings()
    message = describe_validation_error(caught.value)
    assert "STRIPE_TEST_CLOCKS=true needs a test-mode key" in message
    assert "abc123" not in message
