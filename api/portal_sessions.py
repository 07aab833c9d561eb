"""Portal sessions: the single-use link that opens the hosted billing page, and the
browser session (a cookie) it starts.

Like Stripe's billing-portal sessions, the platform creates one with its API key and
sends its user to the URL. Opening it consumes it in one statement and sets a cookie
holding a second random token (HttpOnly, `SameSite=Lax`, `Path=/v1/billing`); every
billing request finds its session by that cookie's digest. Postgres keeps only sha256
digests, so nothing stored opens anything. Forms carry a CSRF token derived from the
cookie's token with the token secret (nothing more to store, and it changes with every
browser session).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.responses import Response

from api.deps import Pool, Settings
from api.errors import ApiError
from api.pages.actions import Action
from onramp.repositories import portal_sessions
from onramp.repositories.portal_sessions import PortalSessionRow
from onramp.settings import ApiSettings
from onramp.tokens import derive_token, hash_token

COOKIE = "onramp_billing"
COOKIE_PATH = "/v1/billing"
ENTER_PATH = "/v1/billing/enter"
# The CSRF token is derived for this purpose only (see `onramp.tokens.derive_token`).
CSRF_PURPOSE = "billing_csrf"
CSRF_FIELD = "csrf"

LINK_PATTERN = r"^[A-Za-z0-9_\-]{32,128}$"


@dataclass(frozen=True)
class CreatedPortalSession:
    id: str
    url: str
    expires_at: datetime


async def create_portal_session(
    pool: asyncpg.Pool, settings: ApiSettings, *, user_id: str, return_url: str
) -> CreatedPortalSession:
    """A new link for `user_id`; the token is in the URL only, never stored."""
    token = secrets.token_urlsafe(32)
    row = await portal_sessions.insert_session(
        pool,
        session_id=str(uuid.uuid4()),
        user_id=user_id,
        token_sha256=hash_token(token),
        return_url=return_url,
        ttl_seconds=settings.portal_session_ttl_seconds,
    )
    url = f"{settings.onramp_public_url}{ENTER_PATH}?session={token}"
    return CreatedPortalSession(id=row.session_id, url=url, expires_at=row.expires_at)


def link_gone(settings: ApiSettings) -> ApiError:
    return ApiError(
        410,
        "portal_session_gone",
        f"This billing link has expired; ask {settings.platform_name} for a new one",
    )


async def open_portal_session(
    pool: asyncpg.Pool, settings: ApiSettings, token: str
) -> tuple[PortalSessionRow, str]:
    """Consume the link; the session and the browser's new token (for its cookie).

    A used or expired link is 410, an unknown one 404: neither ever opens the page."""
    browser_token = secrets.token_urlsafe(32)
    row = await portal_sessions.consume(
        pool,
        token_sha256=hash_token(token),
        browser_sha256=hash_token(browser_token),
        browser_ttl_seconds=settings.billing_session_ttl_seconds,
    )
    if row is not None:
        return row, browser_token
    if await portal_sessions.find_by_token(pool, hash_token(token)) is not None:
        raise link_gone(settings)
    raise ApiError(
        404,
        "portal_session_not_found",
        f"This billing link is not valid; ask {settings.platform_name} for a new one",
    )


def set_browser_cookie(response: Response, settings: ApiSettings, browser_token: str) -> None:
    response.set_cookie(
        COOKIE,
        browser_token,
        max_age=settings.billing_session_ttl_seconds,
        path=COOKIE_PATH,
        httponly=True,
        # Lax, not Strict: the billing page is reached by top-level navigations that
        # start on another site (the platform's link to /enter and its 303 here, and
        # Stripe's redirect back from the setup page), which a Strict cookie would
        # miss, so the page would never open outside a single-site test. Lax still
        # keeps the cookie off cross-site POSTs; the forms' CSRF token guards the rest.
        samesite="lax",
        # Browsers keep a Secure cookie only over https (localhost aside).
        secure=settings.onramp_public_url.startswith("https://"),
    )


@dataclass(frozen=True)
class BillingSession:
    """The browser's billing session: whose page it is, and its forms' CSRF token."""

    row: PortalSessionRow
    csrf_token: str

    @property
    def user_id(self) -> str:
        return self.row.user_id

    def check_csrf(self, submitted: str | None) -> None:
        """Refuse a form without this session's token (403), SameSite aside."""
        if submitted is None or not hmac.compare_digest(
            submitted.encode(), self.csrf_token.encode()
        ):
            raise ApiError(
                403,
                "csrf_failed",
                "This form is out of date; open the billing page again and retry",
                actions=[Action("Open the billing page", COOKIE_PATH)],
            )


async def _billing_session(request: Request, pool: Pool, settings: Settings) -> BillingSession:
    token = request.cookies.get(COOKIE)
    row = None
    if token:
        row = await portal_sessions.find_browser_session(pool, hash_token(token))
    if token is None or row is None:
        raise ApiError(
            401,
            "billing_session_missing",
            f"Your billing session has ended; open billing again from {settings.platform_name}",
        )
    csrf = derive_token(settings.onramp_token_secret, CSRF_PURPOSE, token)
    return BillingSession(row=row, csrf_token=csrf)


CurrentBillingSession = Annotated[BillingSession, Depends(_billing_session)]
