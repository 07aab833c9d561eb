"""The edge of the API: input as the standards define it, bounded requests, and the
headers and redirects every answer carries.

Each test names the finding it covers; each failed on the code before these checks (a
signup with a control character was accepted, a 100 MB body was buffered, 5,000-deep
JSON and `created: 1e20` answered 500, a far-future signature was accepted, HTML pages
had no security headers, the trailing-slash redirect echoed the Host header).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser

from api.app import create_app
from devstack.stripe_events import event_body, sign, stripe_id
from onramp.passwords import SET_PASSWORD
from onramp.repositories import password_tokens
from onramp.settings import ApiSettings
from onramp.tokens import hash_token
from tests.support.api_server import serve_app
from tests.support.harness import ADMIN_KEY, WEBHOOK_SECRETS, auth, open_app_client
from tests.support.stack import Stack

WEBHOOK = "/v1/webhooks/stripe"


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    error: dict[str, str] = body["error"]
    return error


# --- input as the standards define it ----------------------------------------------------


@pytest.mark.parametrize(
    "character",
    ["\x07", "\x7f", "\u200b", "\u202e"],
    ids=["BEL", "DEL", "zero-width-space", "RTL-override"],
)
async def test_signup_refuses_an_email_with_an_invisible_character(
    app_client: httpx.AsyncClient, character: str
) -> None:
    """Finding 3: such an email was accepted, and SMTP then refused it on every attempt."""
    response = await app_client.post(
        "/v1/users",
        json={"email": f"sam{character}@example.com", "username": "sam"},
        headers=auth(),
    )
    error = _assert_error(response, 422, "validation_error")
    assert error["message"].startswith("email: ")
    assert f"U+{ord(character):04X}" in error["message"]
    assert character not in error["message"]  # never echoed into logs or pages


@pytest.mark.parametrize(
    "character", ["\x07", "\x7f", "\u200b", "\u202e", "\u2066", "\x85"], ids=repr
)
async def test_free_text_refuses_control_zero_width_and_bidi_characters(
    app_client: httpx.AsyncClient, character: str
) -> None:
    username = await app_client.post(
        "/v1/users",
        json={"email": "sam@example.com", "username": f"sa{character}m"},
        headers=auth(),
    )
    assert _assert_error(username, 422, "validation_error")["message"].startswith("username: ")
    reason = await app_client.put(
        f"/v1/admin/users/{uuid.uuid4()}/tier",
        json={"tier": "pro", "reason": f"ticket {character}42"},
        headers=auth(ADMIN_KEY),
    )
    assert _assert_error(reason, 422, "validation_error")["message"].startswith("reason: ")


@pytest.mark.parametrize(
    "email",
    ["sam@example", "sam..x@example.com", "Sam <sam@example.com>", "josé@example.com", "s@x.test"],
)
async def test_signup_refuses_what_email_validator_refuses(
    app_client: httpx.AsyncClient, email: str
) -> None:
    response = await app_client.post(
        "/v1/users", json={"email": email, "username": "sam"}, headers=auth()
    )
    assert _assert_error(response, 422, "validation_error")["message"].startswith("email: ")


async def test_signup_stores_the_normalised_address(stack: Stack) -> None:
    """The domain as the library normalises it (lower case, IDNA), one user per mailbox."""
    local = f"Sam.{uuid.uuid4().hex[:8]}"
    response = await stack.api.post(
        "/v1/users",
        json={"email": f"{local}@BÜCHER.example.COM", "username": "sam"},
        headers=auth(),
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"{local.lower()}@xn--bcher-kva.example.com"
    again = await stack.api.post(
        "/v1/users",
        json={"email": f"{local.upper()}@bücher.example.com", "username": "sam"},
        headers=auth(),
    )
    assert _assert_error(again, 409, "email_taken")


# --- bounded requests ----------------------------------------------------------------------


async def test_a_json_body_over_64_kib_is_413(app_client: httpx.AsyncClient) -> None:
    """Finding 4: there was no body limit outside the webhook route."""
    body = json.dumps({"token": "t" * 32, "password": "p" * (64 * 1024)}).encode()
    response = await app_client.post(
        "/v1/portal/set-password", content=body, headers={"Content-Type": "application/json"}
    )
    _assert_error(response, 413, "payload_too_large")


async def test_a_declared_100_mb_body_is_refused_before_it_is_read(
    api_settings: ApiSettings,
) -> None:
    """Content-Length says 100 MB: answered 413 at once, the body never read."""
    async with serve_app(create_app(api_settings)) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(
                b"POST /v1/portal/set-password HTTP/1.1\r\nHost: onramp\r\n"
                b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{"
            )
            await writer.drain()
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))  # type: ignore[union-attr]
                answer = head + await reader.readexactly(length)
        finally:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"code":"payload_too_large"' in answer


async def _chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    yield b'{"token": "'
    for _ in range(total // size):
        yield b"t" * size


async def test_a_streamed_body_is_counted_whatever_content_length_says(
    api_settings: ApiSettings,
) -> None:
    """No Content-Length (chunked): refused at the limit as the bytes arrive."""
    async with (
        serve_app(create_app(api_settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        try:
            response = await client.post(
                "/v1/portal/set-password",
                content=_chunks(4 * 1024 * 1024),
                headers={"Content-Type": "application/json"},
            )
        except httpx.WriteError:
            pytest.fail("the server closed the connection without answering")
        _assert_error(response, 413, "payload_too_large")
        # The webhook keeps its own 1 MiB: 200 KiB reach its signature check.
        webhook = await client.post(
            WEBHOOK,
            content=b'{"id": "' + b"e" * (200 * 1024) + b'"}',
            headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=00"},
        )
        _assert_error(webhook, 400, "invalid_signature")


async def test_oversized_headers_are_431_in_the_error_shape(api_settings: ApiSettings) -> None:
    """Finding 4: 8 MB of headers were accepted."""
    async with (
        serve_app(create_app(api_settings)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as client,
    ):
        response = await client.get("/healthz", headers={"X-Padding": "p" * (1024 * 1024)})
        _assert_error(response, 431, "headers_too_large")
        assert (await client.get("/healthz", headers={"X-Small": "p" * 1024})).status_code == 200


async def test_deep_json_is_422_before_it_is_parsed(app_client: httpx.AsyncClient) -> None:
    """Finding 10: 5,000-deep JSON answered 500."""
    response = await app_client.post(
        "/v1/users",
        content=b"[" * 5000 + b"]" * 5000,
        headers={**auth(), "Content-Type": "application/json"},
    )
    error = _assert_error(response, 422, "validation_error")
    assert "nested deeper than" in error["message"]


def _signed(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    return sign(body, WEBHOOK_SECRETS[0], timestamp=timestamp)


async def test_a_signed_event_nested_5000_deep_is_400(app_client: httpx.AsyncClient) -> None:
    """Finding 10: the webhook's event parsing answered 500 (RecursionError)."""
    body = b'{"id": "evt_deep", "object": "event", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = await app_client.post(WEBHOOK, content=body, headers=_signed(body))
    error = _assert_error(response, 400, "invalid_payload")
    assert "deeper than" in error["message"]


@pytest.mark.parametrize("created", ["1e20", "100000000000000000000", "-1", "true"])
async def test_a_signed_event_with_an_impossible_created_is_400(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool, created: str
) -> None:
    """Finding 10: `created: 1e20` answered 500 (no datetime holds it)."""
    event = json.loads(event_body("customer.updated", {"id": stripe_id("cus"), "object": "x"}))
    text = json.dumps(event).replace(f'"created": {event["created"]}', f'"created": {created}')
    body = text.encode()
    response = await app_client.post(WEBHOOK, content=body, headers=_signed(body))
    error = _assert_error(response, 400, "invalid_payload")
    assert "created" in error["message"]
    stored = await db_pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE event_id = $1", event["id"]
    )
    assert stored == 0


async def test_a_signature_dated_far_in_the_future_is_refused(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """Finding 10: the library only bounds the past; the tolerance now holds both ways."""
    body = event_body("customer.updated", {"id": stripe_id("cus"), "object": "customer"})
    in_a_year = int(time.time()) + 365 * 24 * 3600
    response = await app_client.post(WEBHOOK, content=body, headers=_signed(body, in_a_year))
    _assert_error(response, 400, "invalid_signature")
    event_id = json.loads(body)["id"]
    stored = await db_pool.fetchval(
        "SELECT count(*) FROM webhook_events WHERE event_id = $1", event_id
    )
    assert stored == 0
    # A clock a little ahead (within the 300 s tolerance) is still accepted.
    soon = int(time.time()) + 60
    accepted = await app_client.post(WEBHOOK, content=body, headers=_signed(body, soon))
    assert accepted.status_code == 200, accepted.text


# --- headers, redirects, exposure ----------------------------------------------------------


async def _issue_set_password_token(pool: asyncpg.Pool) -> str:
    user_id, run_id = str(uuid.uuid4()), f"run-{uuid.uuid4()}"
    await pool.execute(
        "INSERT INTO users (id, email, username, status) VALUES ($1, $2, 'sam', 'active')",
        user_id,
        f"{user_id}@example.com",
    )
    await pool.execute(
        "INSERT INTO checkout_runs (run_id, workflow_id, user_id, attempt, tier, billing_cycle,"
        " checkout_session_id) VALUES ($1, $2, $3, 1, 'pro', 'monthly', $4)",
        run_id,
        f"checkout-{user_id}",
        user_id,
        f"cs_test_{uuid.uuid4().hex}",
    )
    token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
    await password_tokens.insert_token(
        pool,
        token_id=str(uuid.uuid4()),
        user_id=user_id,
        run_id=run_id,
        purpose=SET_PASSWORD,
        token_hash=hash_token(token),
        ttl_seconds=600,
    )
    return token


async def test_html_pages_carry_security_headers(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    """Finding 10: the HTML pages sent no X-Frame-Options, CSP or nosniff."""
    token = await _issue_set_password_token(db_pool)
    page = await app_client.get("/v1/portal/set-password", params={"token": token})
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    # The page's one script is a file of our own origin; nothing inline may run.
    assert re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL) == []
    assert '<script src="/static/set_password.js"' in page.text
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    # JSON answers are not sniffed either.
    health = await app_client.get("/healthz")
    assert health.headers["x-content-type-options"] == "nosniff"


async def test_a_trailing_slash_is_never_redirected_to_the_requests_host(
    app_client: httpx.AsyncClient,
) -> None:
    """Finding 10: the trailing-slash redirect echoed the Host header."""
    response = await app_client.get(
        "/v1/users/", headers={**auth(), "Host": "evil.example"}, follow_redirects=False
    )
    assert "location" not in response.headers
    _assert_error(response, 404, "not_found")


async def test_docs_and_metrics_exposure_follow_the_settings(api_settings: ApiSettings) -> None:
    async for client in open_app_client(create_app(api_settings)):
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    exposed = api_settings.model_copy(
        update={"api_docs_enabled": True, "api_metrics_enabled": False}
    )
    async for client in open_app_client(create_app(exposed)):
        docs = await client.get("/docs")
        assert docs.status_code == 200
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
        assert (await client.get("/metrics")).status_code == 404


@pytest.mark.browser
async def test_the_set_password_form_works_in_a_browser_under_its_policy(
    api_settings: ApiSettings, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    """The policy allows the page's own script and nothing else: the form still sets the
    password in a real Chromium, and no CSP violation is reported."""
    token = await _issue_set_password_token(db_pool)
    violations: list[str] = []
    async with serve_app(create_app(api_settings)) as base_url:
        page = await browser.new_page()
        try:
            page.on(
                "console",
                lambda message: (
                    violations.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            await page.goto(f"{base_url}/v1/portal/set-password?token={token}")
            await page.fill("input[name=password]", "a-long-enough-password-42")
            await page.click("#submit")
            # A selector, not a script: the policy forbids eval (Playwright's too).
            await page.wait_for_selector("#result:not(:empty)")
            result = await page.text_content("#result")
        finally:
            await page.close()
    assert result == "Your password is set.", result
    assert violations == []
    stored = await db_pool.fetchval(
        "SELECT state FROM password_tokens WHERE token_hash = $1", hash_token(token)
    )
    assert stored == "used"
