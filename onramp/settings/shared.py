"""The concerns both processes (and the `onramp` subcommands) read: each field declared
and validated here once, whichever process composes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from onramp.settings.values import (
    HostPort,
    HttpUrlStr,
    PostgresDsnSecret,
    PublicUrlStr,
    StripeSecretKey,
    TokenSecret,
    stripe_key_is_live,
)


class Concern(BaseSettings):
    """Base of every concern: variables are read case-insensitively, unknown ones ignored;
    a refused value is never repeated in the error (it may be a key or a DSN's password)."""

    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )


class PostgresSettings(Concern):
    """Postgres: the application database."""

    database_url: PostgresDsnSecret = Field(
        description="`postgresql://…` DSN of the application database (it may hold a "
        "password: it is never shown in logs or error messages)"
    )
    startup_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="how long a process retries an unreachable Postgres (the worker: and "
        "Temporal) at start, logging `STARTUP_WAITING`; then it prints one line naming the "
        "setting and the address and exits 1. The API starts without Temporal",
    )


class TemporalSettings(Concern):
    """Temporal: where workflows run."""

    temporal_address: HostPort = Field(description="`host:port` of the Temporal frontend")
    temporal_namespace: str = Field(default="default", description="Temporal namespace")
    temporal_task_queue: str = Field(
        default="onramp", description="task queue the worker polls and the API starts on"
    )


class TemporalDeadlineSettings(Concern):
    """Temporal deadlines: the API's calls that wait for Temporal alone (and the replay's)."""

    temporal_rpc_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="deadline of a call that waits for Temporal alone (a signal, a query, "
        "a start); past it: 503 with `Retry-After`",
    )


class LoggingSettings(Concern):
    """Logging: one line per event on stderr, secrets redacted."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="lowest level logged"
    )
    log_format: Literal["json", "console"] = Field(
        default="json",
        description="`json`: one JSON object per line (production); `console`: lines for "
        "a person at a terminal (`onramp dev`)",
    )


class TracingSettings(Concern):
    """Tracing: OpenTelemetry spans, sent by OTLP (docs/OBSERVABILITY.md)."""

    otel_exporter_otlp_endpoint: HttpUrlStr | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (e.g. `http://127.0.0.1:4318`; spans go to "
        "`/v1/traces`); unset: no tracing at all. The other standard `OTEL_*` variables "
        "(`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, …) apply",
    )


class StripeSettings(Concern):
    """Stripe: the platform's key (the API reads only its mode)."""

    stripe_secret_key: StripeSecretKey = Field(
        description="`sk_test_…`/`sk_live_…` (or `rk_…`); the worker calls Stripe with it, "
        "the API only reads its mode (test or live) to check webhooks' livemode"
    )

    @property
    def stripe_livemode(self) -> bool:
        return stripe_key_is_live(self.stripe_secret_key.get_secret_value())


class TokenSettings(Concern):
    """Tokens: the key onboarding and set-password tokens are derived with."""

    onramp_token_secret: TokenSecret = Field(
        description="HMAC key that onboarding and set-password tokens are derived with "
        "(at least 32 characters); only token ids enter workflows"
    )


class PublicUrlSettings(Concern):
    """The public URL: where end users and Stripe reach the API."""

    onramp_public_url: PublicUrlStr = Field(
        default="http://127.0.0.1:8000",
        description="base URL end users and Stripe reach the API at: links in emails, "
        "Checkout's success URL, onboarding return URLs (a trailing `/` is dropped)",
    )


class BrandSettings(Concern):
    """The platform's brand on the pages and emails end users see."""

    platform_name: str = Field(
        default="onramp",
        min_length=1,
        max_length=80,
        description="the platform's name, shown on every end-user page and email",
    )
    brand_color: str = Field(
        default="#4f46e5",
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="the platform's colour (`#rrggbb`) for buttons and links on the pages "
        "and emails; pick one with a contrast of at least 4.5:1 against white",
    )
    dashboard_url: HttpUrlStr | None = Field(
        default=None,
        description="where a customer goes once setup is done (the status page's and the "
        "set-password page's last step; unset: the public URL)",
    )


class CommonSettings(PostgresSettings, TemporalSettings, LoggingSettings):
    """What every onramp process needs: Postgres, Temporal and logging."""


class ProvisioningHookSettings(Concern):
    """The provisioning hook a platform owns (docs/PROVISIONING_HOOK.md): the worker calls
    it; the API reports whether the platform's worker polls its queue."""

    provisioning_task_queue: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="task queue of the platform's worker that implements `provision_customer` "
        "and `deprovision_customer`; a paid checkout then provisions through it (unset: "
        "onramp's own workspace row)",
    )
