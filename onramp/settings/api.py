"""The concerns only the HTTP API reads, and `ApiSettings`, which composes them."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from onramp.settings.codec import CodecServerSettings, PayloadCodecSettings
from onramp.settings.shared import (
    BrandSettings,
    Concern,
    LoggingSettings,
    PostgresSettings,
    ProvisioningHookSettings,
    PublicUrlSettings,
    StripeSettings,
    TemporalDeadlineSettings,
    TemporalSettings,
    TokenSettings,
    TracingSettings,
)
from onramp.settings.values import (
    ApiKey,
    HttpUrlStr,
    check_distinct_keys,
    parse_api_keys,
    parse_webhook_secrets,
)


class EdgeSettings(Concern):
    """The API's edge: who may call it, how often, and what it serves besides routes."""

    onramp_api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        description="comma list of `key:scope[:name]`, scope `client` or `admin`; the name "
        "is what audits record; a key or a name listed twice is refused"
    )
    api_docs_enabled: bool = Field(
        default=False,
        description="`true` serves the interactive docs `/docs` and `/redoc` (on under "
        "`onramp dev`); `/openapi.json` is always served",
    )
    api_metrics_enabled: bool = Field(
        default=True,
        description="serve Prometheus metrics at `/metrics` (the alerts on inbox lag and "
        "pollers read them); turn off where the API's port is public and nothing scrapes it",
    )
    token_route_limit_per_minute: int = Field(
        default=20,
        ge=1,
        description="requests a minute per token, state or session on the routes they open "
        "without a key (onboard, Connect refresh/return, checkout return); past it: 429. "
        "Counted in each API process (docs/ONBOARDING.md)",
    )
    address_route_limit_per_minute: int = Field(
        default=300,
        ge=1,
        description="requests a minute per client address on those same routes",
    )

    @field_validator("onramp_api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("onramp_api_keys")
    @classmethod
    def _distinct_keys(cls, value: list[ApiKey]) -> list[ApiKey]:
        return check_distinct_keys(value)


class DatabaseDeadlineSettings(Concern):
    """Postgres deadlines: a hung database answers 503 `database_unavailable` within seconds."""

    database_statement_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="longest statement of a request (Postgres `statement_timeout`; the "
        "client gives up 0.5 s later)",
    )
    database_acquire_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="longest wait for a pooled Postgres connection, connecting included",
    )


class SignupSettings(Concern):
    """Signup: `POST /v1/users`."""

    signup_stripe_customer: Literal["eager", "lazy"] = Field(
        default="eager",
        description="`eager`: create the Stripe customer at signup; `lazy`: at the first payment",
    )
    signup_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="how long `POST /v1/users` waits for the workflow; past it: 202 once the "
        "workflow has started",
    )


class CheckoutSettings(Concern):
    """Checkout, as the API serves it."""

    checkout_success_url: HttpUrlStr | None = Field(
        default=None,
        description="the platform's page after `GET /v1/checkout/return` (unset: onramp's "
        "hosted status page, `/v1/checkout/status-page`)",
    )
    checkout_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="how long `POST /v1/checkout` waits for Stripe; past it: 503 "
        "`operation_pending` with `Retry-After` (the same request with the same "
        "`Idempotency-Key` gets its answer)",
    )
    checkout_return_reread_seconds: float = Field(
        default=5.0, ge=0, description="a checkout return re-reads its session at most this often"
    )


class OnboardingSettings(Concern):
    """Connect onboarding, as the API serves it."""

    onboarding_token_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="lifetime of an onboarding token"
    )
    onboarding_poll_seconds: float = Field(
        default=60.0, ge=0.5, description="how often a workflow re-reads an account mid-onboarding"
    )
    onboarding_return_url: HttpUrlStr | None = Field(
        default=None,
        description="page end users land on after Stripe's return URL (unset: a thank-you page)",
    )
    onboarding_link_wait_seconds: float = Field(
        default=30.0, gt=0, le=120, description="how long `GET /v1/onboard` waits for a link"
    )


class SubscriptionSettings(Concern):
    """Subscriptions, as the API serves them."""

    subscription_update_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        le=300,
        description="how long a plan-change route waits for Stripe; past it: 503 "
        "`operation_pending` with `Retry-After`",
    )


class PortalSettings(Concern):
    """The hosted billing page: its single-use links and the browser sessions they open."""

    portal_session_ttl_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="lifetime of a portal session's link (`POST "
        "/v1/users/{id}/portal-sessions`); it opens the billing page once",
    )
    billing_session_ttl_seconds: int = Field(
        default=1800,
        ge=60,
        le=24 * 3600,
        description="how long the billing page stays open in the browser after the link "
        "was opened (its cookie); then the platform creates a new link",
    )


class WebhookSettings(Concern):
    """Stripe webhooks: ingress (acknowledged once stored) and the inbox dispatcher."""

    stripe_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="comma list of `whsec_…`: platform and Connect endpoints, old and new "
        "during a rotation; required unless `STRIPE_WEBHOOKS_DISABLED=true`",
    )
    stripe_webhooks_disabled: bool = Field(
        default=False,
        description="`true` for a deployment that receives no Stripe webhooks (then "
        "`STRIPE_WEBHOOK_SECRETS` must be unset; workflows re-read Stripe on their own)",
    )
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

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        return parse_webhook_secrets(value) if isinstance(value, str) else value

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


class SystemStatusSettings(Concern):
    """System status: `GET /v1/admin/system`, `/readyz` and the metrics alerts read."""

    system_check_interval_seconds: float = Field(
        default=10.0, gt=0, le=300, description="refresh of the system metrics (pollers, lag)"
    )
    system_inbox_lag_alert_seconds: float = Field(
        default=120.0, gt=0, description="inbox lag at which `GET /v1/admin/system` says not ok"
    )
    system_stuck_after_seconds: float = Field(
        default=1800.0, gt=0, description="a paid checkout not provisioned after this is stuck"
    )
    readiness_poller_max_age_seconds: float = Field(
        default=70.0,
        gt=0,
        description="a task queue's poller seen longer ago than this counts as gone (a live "
        "idle worker's long poll is up to ~60 s old)",
    )


class ApiSettings(
    PostgresSettings,
    TemporalSettings,
    TemporalDeadlineSettings,
    PayloadCodecSettings,
    CodecServerSettings,
    LoggingSettings,
    TracingSettings,
    StripeSettings,
    TokenSettings,
    PublicUrlSettings,
    BrandSettings,
    EdgeSettings,
    DatabaseDeadlineSettings,
    SignupSettings,
    CheckoutSettings,
    OnboardingSettings,
    SubscriptionSettings,
    PortalSettings,
    WebhookSettings,
    SystemStatusSettings,
    ProvisioningHookSettings,
):
    """Settings of the HTTP API process.

    The API never calls Stripe; it reads `STRIPE_SECRET_KEY` only to know whether the
    service runs in test or live mode (webhook livemode checks).
    """
