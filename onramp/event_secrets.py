"""Signing secrets of event endpoints (Standard Webhooks `whsec_…`), sealed at rest.

A secret is shown once, when it is made; Postgres keeps it sealed with AES-256-GCM
under the key `onramp.tokens` derives from ONRAMP_TOKEN_SECRET, bound to the endpoint
(the associated data), so a sealed secret copied to another endpoint opens nothing.
"""

from __future__ import annotations

import base64
import secrets

from pydantic import SecretStr

from onramp import tokens

_PREFIX = "whsec_"
_SECRET_BYTES = 32


def new_secret() -> str:
    return _PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def _bound_to(endpoint_id: str) -> str:
    return f"event_endpoint:{endpoint_id}"


def seal_secret(token_secret: SecretStr, endpoint_id: str, secret: str) -> bytes:
    return tokens.seal(token_secret, _bound_to(endpoint_id), secret)


def open_secret(token_secret: SecretStr, endpoint_id: str, sealed: bytes) -> str | None:
    """The secret, or None when it was not sealed for this endpoint with this key."""
    return tokens.unseal(token_secret, _bound_to(endpoint_id), sealed)
