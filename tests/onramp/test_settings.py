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


def _api_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_abc123")
    monkeypatch.setenv("ONRAMP_API_KEYS", "client-key-0123456789:client")
    monkeypatch.setenv("ONRAMP_TOKEN_SECRET", "a-token-secret-of-at-least-32-chars!")
    for name in ("STRIPE_WEBHOOK_SECRETS", "STRIPE_WEBHOOKS_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def _explained(caught: pytest.ExceptionInfo[ValidationError]) -> str:
    return describe_validation_error(caught.value)


def test_the_api_refuses_to_start_without_a_webhook_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding: the API started without a secret, and then answered every webhook 400."""
    _api_environment(monkeypatch)
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    message = _explained(caught)
    assert "STRIPE_WEBHOOK_SECRETS is not set" in message
    assert "STRIPE_WEBHOOKS_DISABLED=true" in message
    assert len(message.splitlines()) == 2  # the heading and one line


def test_a_deployment_without_webhooks_says_so_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _api_environment(monkeypatch)
    monkeypatch.setenv("STRIPE_WEBHOOKS_DISABLED", "true")
    assert ApiSettings().stripe_webhook_secrets == []
    # Both at once is a contradiction, not a choice.
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_one")
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    assert "unset one of them" in _explained(caught)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # The same key with two scopes: the last one used to win, silently.
        (
            "client-key-0123456789:client,admin-key-0123456789:admin,client-key-0123456789:admin",
            "entries 1 and 3 are the same key",
        ),
        ("client-key-0123456789:client, client-key-0123456789:client", "same key"),
        (
            "client-key-0123456789:client:ops,admin-key-0123456789:admin:ops",
            "entries 1 and 2 have the same name 'ops'",
        ),
    ],
)
def test_duplicate_api_keys_are_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_api_keys(raw)
    _api_environment(monkeypatch)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_one")
    monkeypatch.setenv("ONRAMP_API_KEYS", raw)
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    explained = _explained(caught)
    assert f"ONRAMP_API_KEYS: {message}" in explained or message in explained
    assert "client-key-0123456789" not in explained  # the key itself is never shown


def test_duplicate_keys_are_refused_when_settings_are_built_in_code() -> None:
    keys = parse_api_keys("client-key-0123456789:client")
    with pytest.raises(ValidationError, match="same key"):
        ApiSettings.model_validate(
            {
                "database_url": "postgresql://u:p@127.0.0.1/db",
                "temporal_address": "127.0.0.1:7233",
                "stripe_secret_key": "sk_test_abc123",
                "onramp_api_keys": [*keys, keys[0].model_copy(update={"scope": "admin"})],
                "stripe_webhook_secrets": ["whsec_one"],
                "onramp_token_secret": "a-token-secret-of-at-least-32-chars!",
            }
        )


def test_docs_are_off_and_metrics_on_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    _api_environment(monkeypatch)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_one")
    settings = ApiSettings()
    assert (settings.api_docs_enabled, settings.api_metrics_enabled) == (False, True)
    monkeypatch.setenv("API_DOCS_ENABLED", "true")
    monkeypatch.setenv("API_METRICS_ENABLED", "false")
    settings = ApiSettings()
    assert (settings.api_docs_enabled, settings.api_metrics_enabled) == (True, False)


def _worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _api_environment(monkeypatch)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRETS", "whsec_one")


@pytest.mark.parametrize(
    "variable",
    [
        "ONRAMP_PUBLIC_URL",
        "CHECKOUT_SUCCESS_URL",
        "ONBOARDING_RETURN_URL",
        "CHECKOUT_CANCEL_URL",
        "SET_PASSWORD_URL",
        "STRIPE_API_BASE",
    ],
)
@pytest.mark.parametrize("garbage", ["not a url", "ftp://files.example", "http://"])
def test_urls_refuse_garbage_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, garbage: str
) -> None:
    _worker_environment(monkeypatch)
    monkeypatch.setenv(variable, garbage)
    refused = 0
    for settings_class in (ApiSettings, WorkerSettings):
        if variable.lower() not in settings_class.model_fields:
            continue
        with pytest.raises(ValidationError) as caught:
            settings_class()
        assert f"{variable}: must be an http(s) URL" in _explained(caught)
        refused += 1
    assert refused >= 1


def test_smtp_url_is_an_smtp_url_with_a_port(monkeypatch: pytest.MonkeyPatch) -> None:
    _worker_environment(monkeypatch)
    for good in ("smtp://127.0.0.1:1025", "smtps://user:p%40ss@mail.example:465/"):
        monkeypatch.setenv("SMTP_URL", good)
        assert WorkerSettings().smtp_url == good
    for bad in ("http://mail.example:25", "smtp://mail.example", "smtp://h:25/path", "mail"):
        monkeypatch.setenv("SMTP_URL", bad)
        with pytest.raises(ValidationError) as caught:
            WorkerSettings()
        assert "SMTP_URL: must look like smtp://" in _explained(caught)


def test_urls_are_kept_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked by pydantic's URL types, but the URLs built from them stay byte-identical:
    no `/` added to a bare host; the public URL loses a trailing `/` in both processes."""
    _worker_environment(monkeypatch)
    monkeypatch.setenv("ONRAMP_PUBLIC_URL", "https://onramp.example/")
    monkeypatch.setenv("CHECKOUT_SUCCESS_URL", "https://platform.example")
    monkeypatch.setenv("CHECKOUT_CANCEL_URL", "https://platform.example/cancelled?x=1")
    api, worker = ApiSettings(), WorkerSettings()
    assert api.onramp_public_url == worker.onramp_public_url == "https://onramp.example"
    assert api.checkout_success_url == "https://platform.example"
    assert worker.checkout_cancel_url == "https://platform.example/cancelled?x=1"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ONRAMP_PUBLIC_URL", "onramp.example", "must be an http(s) URL"),
        ("ONRAMP_TOKEN_SECRET", "too-short", "must be at least 32 characters"),
        ("DATABASE_URL", "mysql://u:hunter2@db/x", "must be a postgresql:// URL"),
        ("TEMPORAL_ADDRESS", "temporal", "must be host:port"),
        ("STRIPE_SECRET_KEY", "pk_test_abc", "must be a Stripe secret key"),
        ("LOG_FORMAT", "xml", "'json' or 'console'"),
    ],
)
def test_a_shared_setting_is_validated_the_same_in_both_processes(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """Finding: ONRAMP_PUBLIC_URL and ONRAMP_TOKEN_SECRET were declared twice, and the
    worker accepted a public URL the API refused."""
    _worker_environment(monkeypatch)
    monkeypatch.setenv(variable, value)
    explained = []
    for settings_class in (ApiSettings, WorkerSettings):
        with pytest.raises(ValidationError) as caught:
            settings_class()
        explained.append(_explained(caught))
    assert explained[0] == explained[1]
    assert f"{variable}: " in explained[0] and message in explained[0]
    assert "hunter2" not in explained[0]


def test_the_database_url_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _worker_environment(monkeypatch)
    # libpq's socket form (user, empty host) is what the embedded Postgres hands out.
    for dsn in (
        "postgresql://onramp:hunter2@db.internal:5432/onramp",
        "postgresql://postgres:@/onramp?host=/tmp/onramp-pg",
        "postgres://h1:5432,h2:5433/onramp",
    ):
        monkeypatch.setenv("DATABASE_URL", dsn)
        for settings in (ApiSettings(), WorkerSettings()):
            assert settings.database_url.get_secret_value() == dsn
            assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db:port/x")
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    assert "DATABASE_URL: must be a postgresql:// URL" in _explained(caught)
    # Nor in the exception itself, should a traceback ever be printed.
    assert "hunter2" not in str(caught.value)


def test_log_format_is_json_unless_a_person_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _worker_environment(monkeypatch)
    assert ApiSettings().log_format == WorkerSettings().log_format == "json"
    monkeypatch.setenv("LOG_FORMAT", "console")
    assert ApiSettings().log_format == WorkerSettings().log_format == "console"
