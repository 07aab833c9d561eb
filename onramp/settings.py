"""Typed, validated settings: one object per process, read from the environment.

Every process calls :func:`load_settings` at start; an invalid value stops it with one
clear line per problem instead of a traceback deep inside a request.
"""

from __future__ import annotations

import hashlib
import re
import sys
from typing import Annotated, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Scope = Literal["client", "admin"]

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


class ApiKey(BaseModel):
    """One configured API key: the secret, its scope and the name audits record."""

    key: SecretStr
    scope: Scope
    name: str


def parse_api_keys(raw: str) -> list[ApiKey]:
    """Parse `key:scope[:name],...`; the default name is a short hash of the key."""
    keys: list[ApiKey] = []
    for position, entry in enumerate(part.strip() for part in raw.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"entry {position + 1} must look like key:scope or key:scope:name")
        key, scope = parts[0], parts[1]
        if len(key) < 16:
            raise ValueError(f"entry {position + 1}: a key must be at least 16 characters")
        if scope not in ("client", "admin"):
            raise ValueError(f"entry {position + 1}: scope must be 'client' or 'admin'")
        name = parts[2] if len(parts) == 3 and parts[2] else _key_fingerprint(key)
        keys.append(ApiKey(key=SecretStr(key), scope=scope, name=name))
    if not keys:
        raise ValueError("at least one key is required")
    return check_distinct_keys(keys)


def check_distinct_keys(keys: list[ApiKey]) -> list[ApiKey]:
    """Refuse a key listed twice (whatever its scopes: the last would silently win) and
    two keys with one name (audits and idempotency records name the caller by it)."""
    seen_keys: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for position, entry in enumerate(keys, start=1):
        secret = entry.key.get_secret_value()
        if secret in seen_keys:
            raise ValueError(
                f"entries {seen_keys[secret]} and {position} are the same key: "
                "list each key once, with one scope"
            )
        if entry.name in seen_names:
            raise ValueError(
                f"entries {seen_names[entry.name]} and {position} have the same name "
                f"{entry.name!r}: each key needs its own name"
            )
        seen_keys[secret] = position
        seen_names[entry.name] = position
    return keys


def _key_fingerprint(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def known_capabilities() -> frozenset[str]:
    """Capability names Stripe accepts on an account create, from the `stripe` library's
    generated parameter types (Stripe's own description of its API, not our list)."""
    from stripe.params import AccountCreateParamsCapabilities

    return frozenset(AccountCreateParamsCapabilities.__annotations__)


def parse_capabilities(raw: str) -> list[str]:
    """Parse `CONNECT_CAPABILITIES` (`card_payments,transfers`): known names, no repeats."""
    names: list[str] = []
    for entry in (part.strip() for part in raw.split(",")):
        if entry and entry not in names:
            names.append(entry)
    if not names:
        raise ValueError("at least one capability is required (e.g. transfers)")
    unknown = sorted(set(names) - known_capabilities())
    if unknown:
        raise ValueError(f"unknown capability {', '.join(unknown)} (e.g. card_payments, transfers)")
    return names


def stripe_key_is_live(key: str) -> bool:
    """True for a live-mode secret or restricted key (`sk_live_…`, `rk_live_…`)."""
    return key.startswith(("sk_live_", "rk_live_"))


class CommonSettings(BaseSettings):
    """What every onramp process needs: Postgres, Temporal and logging."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    database_url: SecretStr = Field(
        description="postgresql:// DSN of the application database (it may hold a password)"
    )
    temporal_address: str = Field(description="host:port of the Temporal frontend")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "onramp"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    startup_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="how long a process retries an unreachable Postgres (the worker: and "
        "Temporal) at start before it exits with one line naming the setting",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_dsn(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("postgres://", "postgresql://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not _HOST_PORT.match(value):
            raise ValueError("must be host:port, e.g. 127.0.0.1:7233")
        return value


class StripeSettings(BaseSettings):
    """The Stripe account the service bills with (the sandbox or Stripe itself)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    stripe_secret_key: SecretStr = Field(description="sk_test_… or sk_live_… (or rk_…)")

    @field_validator("stripe_secret_key")
    @classmethod
    def _stripe_key(cls, value: SecretStr) -> SecretStr:
        if not re.match(r"^(sk|rk)_(test|live)_\w+$", value.get_secret_value()):
            raise ValueError("must be a Stripe secret key (sk_test_…, sk_live_…, rk_…)")
        return value

    @property
    def stripe_livemode(self) -> bool:
        return stripe_key_is_live(self.stripe_secret_key.get_secret_value())


class ApiSettings(CommonSettings, StripeSettings):
    """Settings of the HTTP API process.

    The API never calls Stripe; it reads `STRIPE_SECRET_KEY` only to know whether the
    service runs in test or live mode (webhook livemode checks).
    """

    onramp_api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        description="comma list of key:scope[:name], scope client or admin"
    )
    stripe_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma list of whsec_… signing secrets (platform, Connect, rotation); "
        "required unless STRIPE_WEBHOOKS_DISABLED=true",
    )
    stripe_webhooks_disabled: bool = Field(
        default=False,
        description="a deployment that receives no Stripe webhooks (workflows re-read "
        "Stripe on their own); without it, the API refuses to start with no secret",
    )
    api_docs_enabled: bool = Field(
        default=False,
        description="serve the interactive docs (/docs, /redoc); /openapi.json is always "
        "served (`onramp dev` turns the docs on)",
    )
    api_metrics_enabled: bool = Field(
        default=True,
        description="serve Prometheus metrics at /metrics (the inbox-lag and poller alerts "
        "read them); turn off where the API's port is public and nothing scrapes it",
    )
    onramp_public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="base URL end users and Stripe reach the API at (links, redirects)",
    )
    temporal_rpc_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    signup_stripe_customer: Literal["eager", "lazy"] = Field(
        default="eager",
        description="eager: create the Stripe customer at signup; lazy: at the first payment",
    )
    signup_wait_seconds: float = Field(
        default=10.0, ge=0, le=60, description="how long POST /v1/users waits before a 202"
    )
    readiness_poller_max_age_seconds: float = Field(default=70.0, gt=0)

    # --- Webhook inbox dispatcher and system status (the API acknowledges once stored) ---
    webhook_dispatcher_enabled: bool = Field(
        default=True,
        description="run the inbox dispatcher in this API process (safe in several)",
    )
    webhook_dispatch_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the dispatcher looks for due events"
    )
    webhook_dispatch_lease_seconds: float = Field(
        default=30.0, gt=0, le=600, description="how long a claimed event is reserved"
    )
    webhook_dispatch_retry_max_seconds: float = Field(
        default=10.0, gt=0, le=600, description="cap of the backoff while Temporal is down"
    )
    webhook_dispatch_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Temporal calls one dispatcher makes at once (bounded so a burst of "
        "webhooks is answered first and dispatched as the process has room)",
    )
    system_check_interval_seconds: float = Field(
        default=10.0, gt=0, le=300, description="refresh of the system metrics (pollers, lag)"
    )
    system_inbox_lag_alert_seconds: float = Field(
        default=120.0, gt=0, description="inbox lag at which GET /v1/admin/system says not ok"
    )
    system_stuck_after_seconds: float = Field(
        default=1800.0, gt=0, description="a paid checkout not provisioned after this is stuck"
    )

    # --- Subscriptions (issue 15) ---
    subscription_update_wait_seconds: float = Field(
        default=30.0, gt=0, le=300, description="how long a plan-change route waits for Stripe"
    )

    # --- Connect onboarding (issue 17) ---
    onramp_token_secret: SecretStr = Field(
        description="HMAC key tokens are derived with (at least 32 characters)"
    )
    onboarding_token_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="lifetime of an onboarding token"
    )
    onboarding_poll_seconds: float = Field(
        default=60.0, ge=0.5, description="how often a workflow re-reads an account mid-onboarding"
    )
    onboarding_return_url: str | None = Field(
        default=None, description="page end users land on after Stripe's return_url (or a thanks)"
    )
    onboarding_link_wait_seconds: float = Field(
        default=30.0, gt=0, le=120, description="how long GET /v1/onboard waits for a link"
    )
    # Unauthenticated token routes (onboard, connect refresh/return, checkout return):
    # counted in each API process, so N replicas allow N times these (docs/ONBOARDING.md).
    token_route_limit_per_minute: int = Field(
        default=20, ge=1, description="requests per minute per token, state or session"
    )
    address_route_limit_per_minute: int = Field(
        default=300, ge=1, description="requests per minute per client address"
    )
    checkout_return_reread_seconds: float = Field(
        default=5.0, ge=0, description="a session's return re-reads it at most this often"
    )

    # --- Checkout (issue 16) ---
    checkout_success_url: str | None = Field(
        default=None,
        description="the platform's page after GET /v1/checkout/return (default: the public URL)",
    )
    checkout_wait_seconds: float = Field(
        default=30.0, gt=0, le=120, description="how long POST /v1/checkout waits for Stripe"
    )

    # --- Postgres deadlines: a hung database answers 503 within seconds ---
    database_statement_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="longest statement of a request (Postgres statement_timeout; the "
        "client gives up 0.5 s later)",
    )
    database_acquire_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="longest wait for a pooled Postgres connection, connecting included",
    )

    @field_validator("onramp_token_secret")
    @classmethod
    def _api_token_secret(cls, value: SecretStr) -> SecretStr:
        return _check_token_secret(value)

    @field_validator("onramp_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("onramp_api_keys")
    @classmethod
    def _distinct_keys(cls, value: list[ApiKey]) -> list[ApiKey]:
        return check_distinct_keys(value)

    @model_validator(mode="after")
    def _webhook_secrets_or_opt_out(self) -> Self:
        if self.stripe_webhooks_disabled and self.stripe_webhook_secrets:
            raise ValueError(
                "STRIPE_WEBHOOKS_DISABLED=true but STRIPE_WEBHOOK_SECRETS is set: unset one of them"
            )
        if not self.stripe_webhooks_disabled and not self.stripe_webhook_secrets:
            raise ValueError(
                "STRIPE_WEBHOOK_SECRETS is not set, so every Stripe webhook would be "
                "refused: set the endpoints' whsec_… secrets, or STRIPE_WEBHOOKS_DISABLED=true "
                "for a deployment without webhooks"
            )
        return self

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            secrets = [part.strip() for part in value.split(",") if part.strip()]
            for secret in secrets:
                if not secret.startswith("whsec_"):
                    raise ValueError("every secret must start with whsec_")
            return secrets
        return value

    @field_validator("onramp_public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class WorkerSettings(CommonSettings, StripeSettings):
    """Settings of the worker process (the only one that talks to Stripe)."""

    # --- Subscriptions and email (issue 15) ---
    stripe_price_pro_monthly: str | None = Field(default=None, description="price_… of pro")
    stripe_price_pro_yearly: str | None = Field(default=None, description="price_… of pro")
    stripe_price_enterprise_monthly: str | None = Field(default=None, description="price_…")
    stripe_price_enterprise_yearly: str | None = Field(default=None, description="price_…")
    stripe_proration_behavior: Literal["create_prorations", "always_invoice", "none"] = (
        "create_prorations"
    )
    subscription_grace_days: float = Field(
        default=7.0, gt=0, description="days a past_due subscription keeps its tier"
    )
    subscription_continue_as_new_after: int = Field(
        default=1000, ge=1, description="handled events+updates before continue-as-new"
    )
    subscription_reread_budget_seconds: float = Field(
        default=120.0,
        gt=0,
        description="how long one event's re-read retries before the event waits as pending",
    )
    subscription_retry_initial_seconds: float = Field(
        default=30.0, gt=0, description="first wait before a pending event is re-read again"
    )
    subscription_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="cap of the doubling wait between pending re-reads"
    )
    subscription_payment_recheck_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="re-read interval of an invoice waiting for the customer (no event needed)",
    )
    smtp_url: str = Field(
        default="smtp://127.0.0.1:1025", description="smtp://[user:pass@]host:port (or smtps://)"
    )
    email_from: str = Field(default="onramp <noreply@onramp.local>")

    def configured_prices(self) -> dict[str, str]:
        """`<tier>_<cycle>` → Stripe price id, for the prices that are set."""
        prices = {
            "pro_monthly": self.stripe_price_pro_monthly,
            "pro_yearly": self.stripe_price_pro_yearly,
            "enterprise_monthly": self.stripe_price_enterprise_monthly,
            "enterprise_yearly": self.stripe_price_enterprise_yearly,
        }
        return {name: price for name, price in prices.items() if price}

    @field_validator(
        "stripe_price_pro_monthly",
        "stripe_price_pro_yearly",
        "stripe_price_enterprise_monthly",
        "stripe_price_enterprise_yearly",
    )
    @classmethod
    def _price_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^price_[A-Za-z0-9]+$", value):
            raise ValueError("must be a Stripe price id (price_…)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if not re.match(r"^smtps?://([^@/]+@)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?$", value):
            raise ValueError("must look like smtp://host:port")
        return value

    stripe_api_base: str | None = Field(
        default=None, description="Stripe API base URL; unset means api.stripe.com"
    )
    stripe_max_requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="this worker's pace of Stripe requests (unset: 20 with a test key, 80 "
        "live; Stripe allows 25/100 per account, so split it between worker processes)",
    )
    worker_graceful_shutdown_seconds: float = Field(default=30.0, ge=0, le=600)
    worker_metrics_address: str | None = Field(
        default=None, description="host:port for the worker's Prometheus metrics"
    )
    # --- Connect onboarding (issue 17): the worker derives token hashes and link states ---
    onramp_token_secret: SecretStr = Field(
        description="HMAC key tokens are derived with (at least 32 characters)"
    )

    # --- Connect accounts: the capabilities the platform configures ---
    connect_capabilities: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["card_payments", "transfers"],
        description="comma list of capabilities requested on every Connect account; "
        "onboarding is complete when all are active",
    )

    @field_validator("connect_capabilities", mode="before")
    @classmethod
    def _split_capabilities(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_capabilities(value)
        if isinstance(value, list):
            return parse_capabilities(",".join(str(item) for item in value))
        return value

    # --- Checkout (issue 16): session URLs, reconciliation, the set-password link ---
    onramp_public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="base URL of the API (the session's success_url, the default link)",
    )
    checkout_cancel_url: str | None = Field(
        default=None, description="where Stripe sends a user who cancels (default: public URL)"
    )
    checkout_reconcile_after_seconds: float = Field(
        default=120.0, gt=0, description="re-read the session when no webhook came this long"
    )
    checkout_reconcile_max_seconds: float = Field(
        default=3600.0, gt=0, description="longest wait between two re-reads (backoff cap)"
    )
    checkout_reread_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts of one session re-read before the run shows it stuck",
    )
    set_password_url: str | None = Field(
        default=None,
        description="the email's link target (default: <public>/v1/portal/set-password)",
    )
    set_password_token_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="lifetime of a set-password token"
    )

    @field_validator("onramp_token_secret")
    @classmethod
    def _worker_token_secret(cls, value: SecretStr) -> SecretStr:
        return _check_token_secret(value)

    @field_validator("worker_metrics_address")
    @classmethod
    def _metrics_address(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_PORT.match(value):
            raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
        return value

    # --- Test clocks: rehearse renewals, dunning and SCA expiry against Stripe test mode ---
    stripe_test_clocks: bool = Field(
        default=False,
        description="create each new Stripe customer on its own test clock (test keys only)",
    )

    @model_validator(mode="after")
    def _test_clocks_need_a_test_key(self) -> Self:
        if self.stripe_test_clocks and self.stripe_livemode:
            raise ValueError(
                "STRIPE_TEST_CLOCKS=true needs a test-mode key (sk_test_…): "
                "Stripe has test clocks in test mode only"
            )
        return self


def _check_token_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 32:
        raise ValueError("must be at least 32 characters")
    return value


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def describe_validation_error(error: ValidationError) -> str:
    """One line per invalid setting, named as the environment variable is."""
    lines = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"]).upper()
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "missing":
            message = "is required but not set"
        # A check across settings has no single location; its message names them.
        lines.append(f"  {name}: {message}" if name else f"  {message}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build settings from the environment or exit(2) with a readable message."""
    try:
        return settings_class()
    except ValidationError as error:
        print(describe_validation_error(error), file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
