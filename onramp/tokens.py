"""Derived tokens (SPEC 3.0): only a token id travels; the token is recomputed where needed.

`token = base64url(HMAC-SHA256(ONRAMP_TOKEN_SECRET, purpose ":" token_id))`, without
padding. Postgres keeps `sha256(token)` (hex), so a database dump hands out nothing and
the API finds a presented token's row by hashing it. Used for onboarding links and,
later, set-password links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from pydantic import SecretStr

CONNECT_ONBOARDING = "connect_onboarding"
# The `state` of Stripe's refresh/return URLs is derived the same way from the token id,
# so it never enters workflow history either.
CONNECT_STATE = "connect_state"


def new_token_id() -> str:
    return str(uuid.uuid4())


def _secret_bytes(secret: SecretStr | str) -> bytes:
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return value.encode()


def derive_token(secret: SecretStr | str, purpose: str, token_id: str) -> str:
    """The token for `token_id` and `purpose` (URL-safe, no padding)."""
    digest = hmac.new(_secret_bytes(secret), f"{purpose}:{token_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> str:
    """What Postgres stores: the sha256 hex digest of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def derive_token_hash(secret: SecretStr | str, purpose: str, token_id: str) -> str:
    return hash_token(derive_token(secret, purpose, token_id))
