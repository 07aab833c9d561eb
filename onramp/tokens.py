"""Derived tokens: only a token id travels; the token is recomputed where needed.

`token = base64url(HMAC-SHA256(ONRAMP_TOKEN_SECRET, purpose ":" token_id))`, without
padding. Postgres keeps `sha256(token)` (hex), so a database dump hands out nothing and
the API finds a presented token's row by hashing it. Used for onboarding links and,
later, set-password links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
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


# A Stripe account link is itself a bearer secret (whoever holds it enters bank details
# for the account) that lives minutes. It is kept sealed, never in the clear: in
# Postgres (so a repeated open reuses it) and in workflow history (the open update's
# result). The key is derived from the token secret, so only a process that could derive
# the token in the first place can open it; the token id is the associated data, so a
# sealed link cannot be replayed under another token.
ACCOUNT_LINK_KEY = "account_link_key"
_NONCE_BYTES = 12


def _link_key(secret: SecretStr | str) -> bytes:
    return hmac.new(_secret_bytes(secret), ACCOUNT_LINK_KEY.encode(), hashlib.sha256).digest()


def seal(secret: SecretStr | str, token_id: str, value: str) -> bytes:
    """AES-256-GCM of `value` bound to `token_id`: nonce || ciphertext+tag."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_link_key(secret)).encrypt(nonce, value.encode(), token_id.encode())


def unseal(secret: SecretStr | str, token_id: str, sealed: bytes) -> str | None:
    """The sealed value, or None when it was not sealed for this token with this secret."""
    try:
        plain = AESGCM(_link_key(secret)).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], token_id.encode()
        )
    except (InvalidTag, ValueError):
        return None
    return plain.decode()


def seal_text(secret: SecretStr | str, token_id: str, value: str) -> str:
    """`seal` as URL-safe base64, for models that travel through Temporal."""
    return base64.urlsafe_b64encode(seal(secret, token_id, value)).decode("ascii")


def unseal_text(secret: SecretStr | str, token_id: str, sealed: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    return unseal(secret, token_id, raw)
