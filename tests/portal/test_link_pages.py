"""Set-password links opened by a person and by a program: a valid link opens the form;
a used, expired, replaced or unknown one answers a page with the right status and a way
to a new link, or the JSON error shape for an API client. The form works without
JavaScript, and the API refuses a guessable password whichever way it is sent."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import pytest

from api.pages.render import dashboard_url
from onramp.settings import ApiSettings
from onramp.tokens import hash_token
from tests.portal.conftest import IssuedToken, TokenState, issue_token

PAGE = "/v1/portal/set-password"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
GOOD = "violet kettle orbit lantern"


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


def _page(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    return response.text


async def _token_state(pool: asyncpg.Pool, issued: IssuedToken) -> str:
    state: str = await pool.fetchval(
        "SELECT state FROM password_tokens WHERE token_hash = $1", hash_token(issued.token)
    )
    return state


async def test_a_valid_link_opens_the_form_with_its_rules(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    issued = await issue_token(db_pool)
    text = _page(await app_client.get(PAGE, params={"token": issued.token}, headers=HTML), 200)
    assert '<label for="password">New password</label>' in text
    assert ">Set password</button>" in text
    assert "At least 12 characters" in text and "not your email address or username" in text
    assert f'name="token" value="{issued.token}"' in text
    assert '<script src="/static/set_password.js" defer></script>' in text
    # A program asking for the page gets the same HTML (there is nothing else to give).
    assert (await app_client.get(PAGE, params={"token": issued.token})).status_code == 200


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("used", "already used"),
        ("expired", "has expired"),
        ("revoked", "newer link was sent"),
    ],
)
async def test_a_link_that_no_longer_works_answers_a_page_or_json(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool, state: TokenState, said: str
) -> None:
    issued = await issue_token(db_pool, state)
    text = _page(await app_client.get(PAGE, params={"token": issued.token}, headers=HTML), 410)
    assert "This link is no longer valid" in text and said in text
    # The way forward: a form posting the link's token to the resend route, and back.
    assert re.search(
        r'<form method="post" action="/v1/portal/set-password/resend">\s*'
        rf'<input type="hidden" name="token" value="{issued.token}">\s*'
        r'<button type="submit" class="primary">Email me a new link</button>',
        text,
    ), text
    assert "Back to " in text
    answer = await app_client.get(PAGE, params={"token": issued.token}, headers=JSON)
    assert said in _error(answer, 410, "token_gone")["message"]


async def test_an_unknown_link_answers_404_as_a_page_or_json(
    app_client: httpx.AsyncClient,
) -> None:
    unknown = "u" * 43
    text = _page(await app_client.get(PAGE, params={"token": unknown}, headers=HTML), 404)
    assert "This link is not valid" in text
    assert 'href="/v1/portal/set-password/resend">Email me a new link</a>' in text
    _error(
        await app_client.get(PAGE, params={"token": unknown}, headers=JSON), 404, "invalid_token"
    )
    # The JSON API keeps its answer to an unknown token on the form's target.
    posted = await app_client.post(PAGE, json={"token": unknown, "password": GOOD})
    _error(posted, 400, "invalid_token")


async def test_the_form_works_without_javascript(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool, api_settings: ApiSettings
) -> None:
    issued = await issue_token(db_pool)

    async def post(password: str) -> httpx.Response:
        return await app_client.post(
            PAGE, data={"token": issued.token, "password": password}, headers=HTML
        )

    short = _page(await post("short"), 422)
    assert 'id="password-error" role="alert">Use at least 12 characters.' in short
    weak = _page(await post("password1234"), 422)
    assert "This password is too easy to guess." in weak and 'aria-invalid="true"' in weak
    assert f'name="token" value="{issued.token}"' in weak  # the form again, to correct
    assert await _token_state(db_pool, issued) == "issued"

    done = await post(GOOD)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == dashboard_url(api_settings)
    assert await _token_state(db_pool, issued) == "used"
    again = _page(await post(GOOD), 410)
    assert "already used" in again and "Email me a new link" in again


async def test_the_api_refuses_a_guessable_password(
    app_client: httpx.AsyncClient, db_pool: asyncpg.Pool
) -> None:
    issued = await issue_token(db_pool, username="pat")
    common = await app_client.post(PAGE, json={"token": issued.token, "password": "password1234"})
    message = _error(common, 422, "weak_password")["message"]
    assert "common password" in message
    # The user's own email address inside an otherwise strong password.
    local = issued.email.partition("@")[0]
    personal = await app_client.post(
        PAGE, json={"token": issued.token, "password": f"{local} violet kettle orbit"}
    )
    assert "email address or username" in _error(personal, 422, "weak_password")["message"]
    assert await _token_state(db_pool, issued) == "issued"
    stored = await db_pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1::uuid", issued.user_id
    )
    assert stored is None
    done = await app_client.post(PAGE, json={"token": issued.token, "password": GOOD})
    assert done.status_code == 204, done.text


async def test_the_strength_hint(app_client: httpx.AsyncClient, db_pool: asyncpg.Pool) -> None:
    issued = await issue_token(db_pool)
    url = "/v1/portal/password-strength"
    weak = await app_client.post(url, json={"token": issued.token, "password": "password1234"})
    assert weak.status_code == 200, weak.text
    body = weak.json()
    assert set(body) == {"score", "acceptable", "warning", "suggestions"}
    assert body["acceptable"] is False and body["score"] < 3 and body["warning"]
    local = issued.email.partition("@")[0]
    mine = await app_client.post(url, json={"token": issued.token, "password": f"{local}!2024x"})
    assert mine.json()["acceptable"] is False
    strong = await app_client.post(url, json={"token": issued.token, "password": GOOD})
    assert strong.json()["acceptable"] is True and strong.json()["score"] >= 3
    _error(
        await app_client.post(url, json={"token": "z" * 43, "password": GOOD}), 404, "invalid_token"
    )
    gone = await issue_token(db_pool, "expired")
    _error(
        await app_client.post(url, json={"token": gone.token, "password": GOOD}), 410, "token_gone"
    )
    # Rate-limited per token like the other token routes (20 a minute by default).
    answers = [
        (await app_client.post(url, json={"token": issued.token, "password": GOOD})).status_code
        for _ in range(20)
    ]
    assert answers.count(429) >= 1 and set(answers) == {200, 429}
