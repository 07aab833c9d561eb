"""The concerns only the worker reads, and `WorkerSettings`, which composes them."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from onramp.settings.codec import PayloadCodecSettings
from onramp.settings.reconcile import ReconcileSettings
from onramp.settings.shared import (
    BrandSettings,
    Concern,
    LoggingSettings,
    PostgresSettings,
    ProvisioningHookSettings,
    PublicUrlSettings,
    StripeSettings,
    TemporalSettings,
    TokenSettings,
    TracingSettings,
)
from onramp.settings.values import (
    HostPort,
    HttpUrlStr,
    SmtpUrlStr,
    StripePriceId,
    parse_capabilities,
)


class StripeClientSettings(StripeSettings):
    """Stripe, as the worker calls it."""

    stripe_api_base: HttpUrlStr | None = Field(
        default=None,
        description="Stripe API base URL: unset for Stripe itself; the sandbox's URL in "
        "development",
    )
    stripe_max_requests_per_second: float | None = Field(
        default=None,
        gt=0,
        description="this worker's pace of Stripe requests (unset: 20 with a test key, 80 "
        "live; Stripe allows 25/100 per account, so split it between worker processes)",
    )
    stripe_test_clocks: bool = Field(
        default=False,
        description="`true` puts each new Stripe customer on its own test clock (test keys "
        "only; docs/STRIPE.md)",
    )

    @model_validator(mode="after")
    def _test_clocks_need_a_test_key(self) -> Self:
        if self.stripe_test_clocks and self.stripe_livemode:
            raise ValueError(
                "STRIPE_TEST_CLOCKS=true needs a test-mode key (sk_test_…): "
                "Stripe has test clocks in test mode only"
            )
        return self


class BillingSettings(Concern):
    """Subscriptions and their payments, as the worker runs them (docs/SUBSCRIPTIONS.md)."""

    stripe_price_pro_monthly: StripePriceId | None = Field(
        default=None, description="`price_…` of pro, monthly (`onramp dev` creates the prices)"
    )
    stripe_price_pro_yearly: StripePriceId | None = Field(
        default=None, description="`price_…` of pro, yearly"
    )
    stripe_price_enterprise_monthly: StripePriceId | None = Field(
        default=None, description="`price_…` of enterprise, monthly"
    )
    stripe_price_enterprise_yearly: StripePriceId | None = Field(
        default=None, description="`price_…` of enterprise, yearly"
    )
    stripe_proration_behavior: Literal["create_prorations", "always_invoice", "none"] = Field(
        default="create_prorations", description="Stripe's proration behaviour of plan changes"
    )
    subscription_grace_days: float = Field(
        default=7.0, gt=0, description="days a failed payment keeps the tier (past_due)"
    )
    subscription_continue_as_new_after: int = Field(
        default=1000, ge=1, description="handled events and updates before continue-as-new"
    )
    subscription_reread_budget_seconds: float = Field(
        default=120.0,
        gt=0,
        description="how long one event's re-read retries before the event waits as pending "
        "(a pending event is never dropped)",
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
        description="how often a payment waiting for the customer's authentication is "
        "re-read without any event",
    )

    def configured_prices(self) -> dict[str, str]:
        """`<tier>_<cycle>` → Stripe price id, for the prices that are set."""
        prices = {
            "pro_monthly": self.stripe_price_pro_monthly,
            "pro_yearly": self.stripe_price_pro_yearly,
            "enterprise_monthly": self.stripe_price_enterprise_monthly,
            "enterprise_yearly": self.stripe_price_enterprise_yearly,
        }
        return {name: price for name, price in prices.items() if price}


class CheckoutSessionSettings(Concern):
    """Checkout, as the worker runs it: session URLs and reconciliation."""

    checkout_cancel_url: HttpUrlStr | None = Field(
        default=None,
        description="where Stripe sends a user who cancels a Checkout (unset: the public URL)",
    )
    checkout_reconcile_after_seconds: float = Field(
        default=120.0,
        gt=0,
        description="re-read a checkout session from Stripe when no webhook came this long",
    )
    checkout_reconcile_max_seconds: float = Field(
        default=3600.0, gt=0, description="longest wait between two re-reads (backoff cap)"
    )
    checkout_reread_attempts: int = Field(
        default=5,
        ge=1,
        description="attempts of one session re-read before the run shows it stuck and backs "
        "off; it never gives up",
    )


class EventDeliverySettings(Concern):
    """Delivery of outbound events to the platform's endpoints (docs/EVENTS.md)."""

    event_delivery_attempt_timeout_seconds: float = Field(
        default=15.0, gt=0, le=300, description="one delivery attempt's HTTP timeout"
    )
    event_delivery_initial_backoff_seconds: float = Field(
        default=5.0, gt=0, description="wait before the second attempt; doubled after each"
    )
    event_delivery_max_backoff_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="longest wait between two attempts"
    )
    event_delivery_give_up_after_seconds: float = Field(
        default=3 * 24 * 3600.0,
        gt=0,
        description="an event still undelivered this long is given up (replayable)",
    )
    event_delivery_failing_after_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="an event undelivered this long marks its endpoint failing",
    )
    event_delivery_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often each endpoint's dispatcher reads the outbox",
    )


class EmailSettings(Concern):
    """Email: where it goes, and the set-password link it carries."""

    smtp_url: SmtpUrlStr = Field(
        default="smtp://127.0.0.1:1025",
        description="`smtp://[user:pass@]host:port` (or `smtps://`, TLS from the first byte); "
        "`onramp dev` runs a sink on 127.0.0.1:1025 that keeps `.eml` files in `.onramp/mail`",
    )
    email_from: str = Field(
        default="onramp <noreply@onramp.local>", description="the From header of every email"
    )
    set_password_url: HttpUrlStr | None = Field(
        default=None,
        description="the email's set-password link target (unset: "
        "`<ONRAMP_PUBLIC_URL>/v1/portal/set-password`)",
    )
    set_password_token_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, description="lifetime of a set-password token"
    )


class ConnectSettings(Concern):
    """Connect accounts: the capabilities the platform configures (docs/ONBOARDING.md)."""

    connect_capabilities: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["card_payments", "transfers"],
        description="comma list of capabilities requested on every Connect account "
        "(`transfers` for a payouts-only platform); onboarding is complete when all are active",
    )

    @field_validator("connect_capabilities", mode="before")
    @classmethod
    def _split_capabilities(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_capabilities(value)
        if isinstance(value, list):
            return parse_capabilities(",".join(str(item) for item in value))
        return value


class WorkerProcessSettings(Concern):
    """The worker process: shutdown and its own metrics."""

    worker_graceful_shutdown_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="how long in-flight activities may finish on SIGTERM; 15 s later a stop "
        "still waiting on a Postgres step exits anyway (`WORKER_STOP_FORCED`, exit 3: the "
        "steps run again on the next worker)",
    )
    worker_metrics_address: HostPort | None = Field(
        default="127.0.0.1:9464",
        description="`host:port` where the worker serves its Prometheus metrics (steps, "
        "Stripe calls, checkouts: docs/OBSERVABILITY.md) at `/metrics`; `none` serves "
        "none. An address already taken is logged (`WORKER_METRICS_UNAVAILABLE`) and "
        "the worker runs on",
    )
    worker_sdk_metrics_address: HostPort | None = Field(
        default=None,
        description="`host:port` for the Temporal SDK runtime's own Prometheus metrics "
        "(pollers, task slots, latencies); unset: none",
    )

    @field_validator("worker_metrics_address", mode="before")
    @classmethod
    def _none_disables(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("none", ""):
            return None
        return value


class WorkerSettings(
    PostgresSettings,
    TemporalSettings,
    PayloadCodecSettings,
    LoggingSettings,
    TracingSettings,
    StripeClientSettings,
    TokenSettings,
    PublicUrlSettings,
    BrandSettings,
    BillingSettings,
    CheckoutSessionSettings,
    ProvisioningHookSettings,
    EventDeliverySettings,
    EmailSettings,
    ConnectSettings,
    ReconcileSettings,
    WorkerProcessSettings,
):
    """Settings of the worker process (the only one that talks to Stripe)."""
