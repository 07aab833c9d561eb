"""The value types of settings: parsers and checked types shared by every concern.

URLs are checked with pydantic's URL types but kept as the string the operator wrote,
so the URLs onramp builds from them (redirects, links, Stripe's return URLs) are exactly
what was configured: `HttpUrl` would add a `/` to a bare host and is not a `str`.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AnyUrl,
    BaseModel,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
)

Scope = Literal["client", "admin"]

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)
_SMTP_URL: TypeAdapter[AnyUrl] = TypeAdapter(
    Annotated[AnyUrl, UrlConstraints(allowed_schemes=["smtp", "smtps"], host_required=True)]
)


def _url_problem(error: ValidationError) -> str:
    """pydantic's reason, without the input (a URL may carry a password)."""
    return error.errors()[0]["msg"].removeprefix("Input should be a valid URL, ")


def _http_url(value: str) -> str:
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as error:
        raise ValueError(
            f"must be an http(s) URL such as https://onramp.example.com ({_url_problem(error)})"
        ) from None
    return value


def _public_url(value: str) -> str:
    # Links are built as f"{public}/v1/…": one spelling, without the trailing slash.
    return _http_url(value).rstrip("/")


def _smtp_url(value: str) -> str:
    try:
        url = _SMTP_URL.validate_python(value)
    except ValidationError as error:
        raise ValueError(f"must look like smtp://host:port ({_url_problem(error)})") from None
    if url.port is None or url.path not in (None, "", "/") or url.query or url.fragment:
        raise ValueError("must look like smtp://[user:pass@]host:port, nothing after the port")
    return value


def _postgres_dsn(value: SecretStr) -> SecretStr:
    # Not pydantic's PostgresDsn: it refuses libpq's socket form
    # `postgresql://user:@/db?host=/run/postgresql` (user, empty host), which asyncpg
    # accepts and the embedded Postgres of `onramp dev` and the tests hands out.
    dsn = value.get_secret_value()
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql") or any(c.isspace() for c in dsn):
        raise ValueError("must be a postgresql:// URL")
    try:
        # libpq lists several hosts with commas, each with its own port.
        for host in parts.netloc.rpartition("@")[2].split(","):
            _ = urlsplit(f"//{host}").port  # raises on a port that is not a number in range
    except ValueError:
        raise ValueError("must be a postgresql:// URL (a port is not a number)") from None
    return value


def _host_port(value: str) -> str:
    if not _HOST_PORT.match(value):
        raise ValueError("must be host:port, e.g. 127.0.0.1:7233")
    return value


def _token_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 32:
        raise ValueError("must be at least 32 characters")
    return value


def _stripe_secret_key(value: SecretStr) -> SecretStr:
    if not re.match(r"^(sk|rk)_(test|live)_\w+$", value.get_secret_value()):
        raise ValueError("must be a Stripe secret key (sk_test_…, sk_live_…, rk_…)")
    return value


def _price_id(value: str) -> str:
    if not re.match(r"^price_[A-Za-z0-9]+$", value):
        raise ValueError("must be a Stripe price id (price_…)")
    return value


HttpUrlStr = Annotated[str, AfterValidator(_http_url)]
"""An http(s) URL checked by pydantic's `HttpUrl`, kept byte for byte as configured."""
PublicUrlStr = Annotated[str, AfterValidator(_public_url)]
"""An http(s) URL links are built under: checked, trailing `/` removed."""
SmtpUrlStr = Annotated[str, AfterValidator(_smtp_url)]
"""`smtp://[user:pass@]host:port` or `smtps://…`, checked by pydantic's `AnyUrl`."""
PostgresDsnSecret = Annotated[SecretStr, AfterValidator(_postgres_dsn)]
"""A `postgresql://` DSN that stays `**********` in reprs and logs (it may hold a password)."""
HostPort = Annotated[str, AfterValidator(_host_port)]
TokenSecret = Annotated[SecretStr, AfterValidator(_token_secret)]
StripeSecretKey = Annotated[SecretStr, AfterValidator(_stripe_secret_key)]
StripePriceId = Annotated[str, AfterValidator(_price_id)]


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


def parse_webhook_secrets(raw: str) -> list[str]:
    """Parse `STRIPE_WEBHOOK_SECRETS` (`whsec_a,whsec_b`): every entry a signing secret."""
    secrets = [part.strip() for part in raw.split(",") if part.strip()]
    for secret in secrets:
        if not secret.startswith("whsec_"):
            raise ValueError("every secret must start with whsec_")
    return secrets


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
