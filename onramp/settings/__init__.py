"""Typed, validated settings: one object per process, read from the environment.

Each concern (Postgres, Temporal, Stripe, checkout, …) is one class whose fields are
declared, described and validated once; `ApiSettings` and `WorkerSettings` compose the
concerns they use, so a variable both processes read is checked the same way in both and
attribute and variable names stay flat (`settings.database_url`, `DATABASE_URL`).
README.md's configuration table is generated from the descriptions
(`python -m onramp.settings_doc --write`).

Every process calls :func:`load_settings` at start; an invalid value stops it with one
clear line per problem instead of a traceback deep inside a request.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from onramp.settings.api import (
    ApiSettings,
    CheckoutSettings,
    DatabaseDeadlineSettings,
    EdgeSettings,
    OnboardingSettings,
    PortalSettings,
    SignupSettings,
    SubscriptionSettings,
    SystemStatusSettings,
    WebhookSettings,
)
from onramp.settings.codec import (
    CodecServerSettings,
    PayloadCodecSettings,
    PayloadKey,
    parse_payload_keys,
)
from onramp.settings.reconcile import ReconcileSettings
from onramp.settings.shared import (
    BrandSettings,
    CommonSettings,
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
    Scope,
    check_distinct_keys,
    known_capabilities,
    parse_api_keys,
    parse_capabilities,
    stripe_key_is_live,
)
from onramp.settings.worker import (
    BillingSettings,
    CheckoutSessionSettings,
    ConnectSettings,
    EmailSettings,
    EventDeliverySettings,
    StripeClientSettings,
    WorkerProcessSettings,
    WorkerSettings,
)

__all__ = [
    "CONCERNS",
    "ApiKey",
    "ApiSettings",
    "BillingSettings",
    "BrandSettings",
    "CheckoutSessionSettings",
    "CheckoutSettings",
    "CodecServerSettings",
    "CommonSettings",
    "Concern",
    "ConnectSettings",
    "DatabaseDeadlineSettings",
    "EdgeSettings",
    "EmailSettings",
    "EventDeliverySettings",
    "LoggingSettings",
    "OnboardingSettings",
    "PayloadCodecSettings",
    "PayloadKey",
    "PortalSettings",
    "PostgresSettings",
    "ProvisioningHookSettings",
    "PublicUrlSettings",
    "ReconcileSettings",
    "Scope",
    "SignupSettings",
    "StripeClientSettings",
    "StripeSettings",
    "SubscriptionSettings",
    "SystemStatusSettings",
    "TemporalDeadlineSettings",
    "TemporalSettings",
    "TokenSettings",
    "TracingSettings",
    "WebhookSettings",
    "WorkerProcessSettings",
    "WorkerSettings",
    "check_distinct_keys",
    "describe_validation_error",
    "known_capabilities",
    "load_settings",
    "parse_api_keys",
    "parse_capabilities",
    "parse_payload_keys",
    "stripe_key_is_live",
]

# Every concern, in the order the README documents them.
CONCERNS: tuple[type[Concern], ...] = (
    PostgresSettings,
    TemporalSettings,
    PayloadCodecSettings,
    CodecServerSettings,
    LoggingSettings,
    TracingSettings,
    StripeSettings,
    StripeClientSettings,
    TokenSettings,
    PublicUrlSettings,
    BrandSettings,
    EdgeSettings,
    TemporalDeadlineSettings,
    DatabaseDeadlineSettings,
    SignupSettings,
    CheckoutSettings,
    CheckoutSessionSettings,
    ProvisioningHookSettings,
    EventDeliverySettings,
    BillingSettings,
    SubscriptionSettings,
    OnboardingSettings,
    PortalSettings,
    ConnectSettings,
    EmailSettings,
    WebhookSettings,
    SystemStatusSettings,
    ReconcileSettings,
    WorkerProcessSettings,
)

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
