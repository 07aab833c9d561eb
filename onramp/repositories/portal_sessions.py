"""The `portal_sessions` table: billing-page links and the browser sessions they open.

Only digests are stored (sha256 hex of the link's token and of the browser's cookie);
the API hashes what it is handed to find a row.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from onramp.repositories import Db


class PortalSessionRow(BaseModel):
    """A portal session as the billing page needs it."""

    session_id: str
    user_id: str
    return_url: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    browser_expires_at: datetime | None


_COLUMNS = """
    id::text AS session_id, user_id::text AS user_id, return_url, created_at, expires_at,
    used_at, browser_expires_at
"""


async def insert_session(
    db: Db,
    *,
    session_id: str,
    user_id: str,
    token_sha256: str,
    return_url: str,
    ttl_seconds: float,
) -> PortalSessionRow:
    row = await db.fetchrow(
        f"""
        INSERT INTO portal_sessions (id, user_id, token_sha256, return_url, expires_at)
        VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        session_id,
        user_id,
        token_sha256,
        return_url,
        float(ttl_seconds),
    )
    assert row is not None
    return PortalSessionRow.model_validate(dict(row))


async def consume(
    db: Db, *, token_sha256: str, browser_sha256: str, browser_ttl_seconds: float
) -> PortalSessionRow | None:
    """Use the link once, atomically: the row of an unused, unexpired token gets the
    browser's digest; any other (used, expired, unknown) answers None."""
    row = await db.fetchrow(
        f"""
        UPDATE portal_sessions
        SET used_at = now(), browser_sha256 = $2,
            browser_expires_at = now() + make_interval(secs => $3)
        WHERE token_sha256 = $1 AND used_at IS NULL AND expires_at > now()
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        token_sha256,
        browser_sha256,
        float(browser_ttl_seconds),
    )
    return PortalSessionRow.model_validate(dict(row)) if row else None


async def find_by_token(db: Db, token_sha256: str) -> PortalSessionRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM portal_sessions WHERE token_sha256 = $1",  # noqa: S608
        token_sha256,
    )
    return PortalSessionRow.model_validate(dict(row)) if row else None


async def find_browser_session(db: Db, browser_sha256: str) -> PortalSessionRow | None:
    """The browser session of this cookie while it lasts."""
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM portal_sessions "  # noqa: S608
        "WHERE browser_sha256 = $1 AND browser_expires_at > now()",
        browser_sha256,
    )
    return PortalSessionRow.model_validate(dict(row)) if row else None
