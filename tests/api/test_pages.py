"""The end users' pages: HTML for a browser, the JSON error shape for a program."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from api.pages.negotiation import wants_html

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _request(accept: str | None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "headers": headers, "path": "/", "method": "GET"})


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.9, application/json;q=0.9", True),
        ("*/*", False),
        (None, False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_html_only_when_asked_for(accept: str | None, html: bool) -> None:
    assert wants_html(_request(accept)) is html


async def test_an_unknown_end_user_page_is_a_page_for_a_browser(
    app_client: httpx.AsyncClient,
) -> None:
    page = await app_client.get("/v1/portal/nowhere", headers={"Accept": BROWSER})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "We could not find this page" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

    api = await app_client.get("/v1/portal/nowhere", headers={"Accept": "application/json"})
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


async def test_api_routes_answer_json_even_to_a_browser(app_client: httpx.AsyncClient) -> None:
    answer = await app_client.get("/v1/users/nobody", headers={"Accept": BROWSER})
    assert answer.status_code in (401, 404, 422)
    assert answer.headers["content-type"].startswith("application/json")


async def test_the_stylesheet_and_the_brand_colour_are_served(
    app_client: httpx.AsyncClient,
) -> None:
    css = await app_client.get("/static/onramp.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    brand = await app_client.get("/static/brand.css")
    assert brand.text.strip() == ":root { --brand: #4f46e5; }"
    missing = await app_client.get("/static/..%2Fapp.py")
    assert missing.status_code == 404


def test_a_form_may_end_at_the_dashboard_and_nowhere_else() -> None:
    from api.edge import html_policy

    policy = html_policy(form_targets=["https://platform.example", "https://platform.example"])
    assert "form-action 'self' https://platform.example;" in policy
    assert "form-action 'self';" in html_policy()
