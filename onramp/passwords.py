"""Set-password tokens and password hashing (SPEC 3.0, 3.3).

The token is derived from its id (`onramp.tokens`, purpose :data:`SET_PASSWORD`), so only
the id travels through workflows; the email activity derives the link and the API hashes
a presented token to find its row. Passwords are hashed with argon2id (argon2-cffi's
recommended parameters) in a thread, so hashing never blocks the event loop.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from argon2 import PasswordHasher
from pydantic import SecretStr

from onramp.tokens import derive_token

SET_PASSWORD = "set_password"  # noqa: S105 - a token purpose, not a secret
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# The library's defaults are its recommended argon2id parameters (RFC 9106, low memory).
_hasher = PasswordHasher()


def set_password_link(secret: SecretStr | str, base_url: str, token_id: str) -> str:
    """`<SET_PASSWORD_URL>?token=<derived token>`: built only where it is sent."""
    token = derive_token(secret, SET_PASSWORD, token_id)
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode({'token': token})}"


def _hash(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    """The argon2id hash (encoded, `$argon2id$…`), computed in a worker thread."""
    return await asyncio.to_thread(_hash, password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except Exception:  # any mismatch or malformed hash is "no"
        return False
