"""Short-lived signed view tokens: what lets a browser read one checkout's status page.

The hosted status page needs no API key and must not open with a user id alone. When
Stripe sends the customer back (`/v1/checkout/return?session_id=cs_…`), the API finds
the session's user and hands the browser a token that names the user and that Checkout
Session, signed with `ONRAMP_TOKEN_SECRET` (HMAC-SHA256 under a key derived for this one
purpose) and valid for `ttl_seconds`. Nothing is stored: the signature is the record.
A token names no secret and opens nothing else; the page it opens shows the setup
status and offers to resend the set-password email (to the address on file).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from pydantic import SecretStr

from onramp.tokens import derive_token

CHECKOUT_VIEW = "checkout_view"
# Long enough to follow a slow bank payment and the email step, short enough that a
# token copied from a browser's history soon opens nothing.
VIEW_TOKEN_TTL_SECONDS = 6 * 3600
MAX_VIEW_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class ViewClaims:
    user_id: str
    session_id: str
    expires_at: int


def _key(secret: SecretStr | str) -> bytes:
    return derive_token(secret, CHECKOUT_VIEW, "view-token-key").encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_view_token(
    secret: SecretStr | str, *, user_id: str, session_id: str, now: float, ttl_seconds: int
) -> str:
    claims = {"u": user_id, "s": session_id, "e": int(now) + ttl_seconds}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def verify_view_token(secret: SecretStr | str, token: str, *, now: float) -> ViewClaims | None:
    """The token's claims when it is ours, intact and not expired; else None."""
    if len(token) > MAX_VIEW_TOKEN_LENGTH or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    expected = _b64(hmac.new(_key(secret), body.encode(), hashlib.sha256).digest())
    # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a forged
    # token may hold any).
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        claims = json.loads(_unb64(body))
        parsed = ViewClaims(str(claims["u"]), str(claims["s"]), int(claims["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return parsed if parsed.expires_at > now else None
