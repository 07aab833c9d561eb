"""Portal sessions over the API: created with the client key, stored as digests only,
opened once into an HttpOnly, SameSite=Lax cookie, and forms refused without the
session's CSRF token."""

from __future__ import annotations

import hashlib
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from onramp.repositories import users
from tests.support.harness import ADMIN_KEY, auth

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def _active_user(db: asyncpg.Pool) -> str:
    user_id = str(uuid.uuid4())
    await users.insert_profile(db, user_id, f"bill-{user_id[:8]}@example.com", "sam", False)
    await users.mark_active(db, user_id)
    return user_id


async def _create(client: httpx.AsyncClient, user_id: str, **body: str) -> httpx.Response:
    return await client.post(
        f"/v1/users/{user_id}/portal-sessions", json=body or None, headers=auth()
    )


def _enter_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_creation_needs_the_client_key_and_a_known_user(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    anonymous = await app_client.post(f"/v1/users/{user_id}/portal-sessions")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    wrong = await app_client.post(
        f"/v1/users/{user_id}/portal-sessions", headers=auth("not-a-key-at-all-0000")
    )
    assert wrong.status_code == 401
    unknown = await _create(app_client, str(uuid.uuid4()))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "user_not_found"
    admin = await app_client.post(f"/v1/users/{user_id}/portal-sessions", headers=auth(ADMIN_KEY))
    assert admin.status_code == 201, admin.text


async def test_return_url_must_be_http(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    refused = await _create(app_client, user_id, return_url="javascript:alert(1)")
    assert refused.status_code == 422, refused.text
    created = await _create(app_client, user_id, return_url="https://platform.example/account")
    assert created.status_code == 201, created.text
    opened = await app_client.get(_enter_path(created.json()["url"]))
    page = await app_client.get("/v1/billing", headers={"Accept": BROWSER})
    assert opened.status_code == 303 and page.status_code == 200, page.text
    assert 'href="https://platform.example/account"' in page.text


async def test_the_token_is_stored_as_its_digest_only(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    created = await _create(app_client, user_id)
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "url", "expires_at"}
    assert body["url"].startswith("http://127.0.0.1:8000/v1/billing/enter?session=")
    token = parse_qs(urlsplit(body["url"]).query)["session"][0]
    row = await db_pool.fetchrow(
        "SELECT * FROM portal_sessions WHERE id = $1", uuid.UUID(body["id"])
    )
    assert row is not None
    assert row["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in dict(row).values())
    lifetime = row["expires_at"] - row["created_at"]
    assert 299 <= lifetime.total_seconds() <= 301


async def test_opening_sets_a_lax_http_only_cookie_once(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    url = (await _create(app_client, user_id)).json()["url"]
    opened = await app_client.get(_enter_path(url), headers={"Accept": BROWSER})
    assert opened.status_code == 303, opened.text
    assert opened.headers["location"] == "/v1/billing"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("onramp_billing=")
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Path=/v1/billing" in cookie and "Max-Age=1800" in cookie
    browser_token = cookie.split(";")[0].split("=", 1)[1]
    row = await db_pool.fetchrow(
        "SELECT browser_sha256, used_at FROM portal_sessions WHERE user_id = $1",
        uuid.UUID(user_id),
    )
    assert row is not None and row["used_at"] is not None
    assert row["browser_sha256"] == hashlib.sha256(browser_token.encode()).hexdigest()

    page = await app_client.get("/v1/billing", headers={"Accept": BROWSER})
    assert page.status_code == 200, page.text
    assert "<h1>Billing</h1>" in page.text and "free plan" in page.text

    # A second open, in a browser or by a program, never reaches the page.
    app_client.cookies.clear()
    again = await app_client.get(_enter_path(url), headers={"Accept": BROWSER})
    assert again.status_code == 410
    assert "text/html" in again.headers["content-type"]
    assert "This billing link has expired; ask onramp for a new one" in again.text
    assert "set-cookie" not in again.headers
    as_json = await app_client.get(_enter_path(url), headers={"Accept": "application/json"})
    assert as_json.status_code == 410
    assert as_json.json()["error"]["code"] == "portal_session_gone"


async def test_an_expired_or_unknown_link_gets_a_page(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    body = (await _create(app_client, user_id)).json()
    await db_pool.execute(
        "UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(body["id"]),
    )
    expired = await app_client.get(_enter_path(body["url"]), headers={"Accept": BROWSER})
    assert expired.status_code == 410
    assert "This billing link has expired" in expired.text
    unknown = await app_client.get(
        "/v1/billing/enter?session=" + "x" * 43, headers={"Accept": BROWSER}
    )
    assert unknown.status_code == 404 and "not valid" in unknown.text
    without = await app_client.get("/v1/billing", headers={"Accept": BROWSER})
    assert without.status_code == 401 and "billing session has ended" in without.text


async def test_a_form_without_the_csrf_token_is_refused(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    user_id = await _active_user(db_pool)
    url = (await _create(app_client, user_id)).json()["url"]
    await app_client.get(_enter_path(url))
    page = await app_client.get("/v1/billing", headers={"Accept": BROWSER})
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    # A free user has no plan forms; the token is the session's, whatever the form.
    assert found is None
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": BROWSER}
    for path in ("/v1/billing/cancel", "/v1/billing/payment-method"):
        missing = await app_client.post(path, content="op=x", headers=form)
        assert missing.status_code == 403, missing.text
        assert "This form is out of date" in missing.text
        forged = await app_client.post(path, content="csrf=forged&op=x", headers=form)
        assert forged.status_code == 403
    # Without the cookie nothing is checked at all: the session is missing.
    app_client.cookies.clear()
    anonymous = await app_client.post("/v1/billing/cancel", content="csrf=x", headers=form)
    assert anonymous.status_code == 401
