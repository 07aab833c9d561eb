"""Connect onboarding's pages, for people, against real services (the API over HTTP, the
worker, the sandbox as Stripe).

A browser (`Accept: text/html…`) opening an unknown, expired, replaced or used
onboarding link gets a page with the JSON answer's status and the way back to the
platform; `Accept: application/json` gets the JSON error shape as before. Back from
Stripe, the return page says in words what Stripe still needs (an unknown requirement
still shown), or that onboarding is complete; refresh answers a page at once that
continues by itself to the request that makes the new link.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, Route

from onramp import requirements, tokens
from tests.onboarding.conftest import Served, serve_onboarding
from tests.support.axe import assert_accessible
from tests.support.browser import screenshot
from tests.support.stack import Stack

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
AS_BROWSER = {"Accept": BROWSER}
AS_JSON = {"Accept": "application/json"}
PLATFORM = "Acme Tutors"
DASHBOARD = "https://dashboard.acme.example/home"


@pytest.fixture
async def served(stack: Stack, db_pool: asyncpg.Pool) -> Any:
    overrides = {"platform_name": PLATFORM, "dashboard_url": DASHBOARD}
    async with serve_onboarding(
        stack, db_pool, webhooks=False, poll_seconds=60, overrides=overrides
    ) as served:
        yield served


def _token(issued: dict[str, Any]) -> str:
    return str(parse_qs(urlparse(issued["url"]).query)["token"][0])


async def _state(served: Served, user_id: str) -> str:
    row = await served.token_row(user_id)
    secret = served.stack.settings.onramp_token_secret
    return tokens.derive_token(secret, tokens.CONNECT_STATE, str(row["id"]))


def _assert_page(response: httpx.Response, status: int, *texts: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    for text in texts:
        assert text in response.text, (text, response.text)
    # The way back to the platform is on every refusal page.
    assert f'href="{DASHBOARD}"' in response.text
    assert f"Back to {PLATFORM}" in response.text


def _assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message"}


async def _onboard(served: Served, token: str, headers: dict[str, str]) -> httpx.Response:
    return await served.http.get("/v1/onboard", params={"token": token}, headers=headers)


async def _connect(
    served: Served, route: str, state: str, headers: dict[str, str], **params: str
) -> httpx.Response:
    return await served.http.get(
        f"/v1/connect/{route}", params={"state": state, **params}, headers=headers
    )


def test_requirements_in_words() -> None:
    """Parts of one field become one sentence, in Stripe's order; an unknown name is
    shown readably, with the name itself, never dropped."""
    said = requirements.describe_all(
        [
            "external_account",
            "individual.verification.document",
            "business_profile.url",
            "tos_acceptance.date",
            "tos_acceptance.ip",
            "individual.dob.day",
            "individual.dob.year",
            "person_1AbC.address.city",
            "brand_new.thing_stripe_added",
        ]
    )
    assert said == [
        "Add the bank account your payouts go to.",
        "Upload a photo of your identity document (a passport, a driving licence or an ID card).",
        "Give your business's website, or a page that shows what you sell.",
        "Accept Stripe's services agreement.",
        "Give your date of birth.",
        "Give a listed person's home address.",
        "Stripe also needs: brand new, thing stripe added (brand_new.thing_stripe_added).",
    ]
    assert requirements.describe_all([]) == []


@pytest.mark.slow
async def test_unknown_replaced_and_expired_links_answer_pages_or_json(
    served: Served, db_pool: asyncpg.Pool
) -> None:
    user_id, _ = await served.signup()
    replaced = _token(await served.issue(user_id))
    # A second link revokes the first, still unused one.
    expired = _token(await served.issue(user_id))
    await db_pool.execute(
        "UPDATE onboarding_tokens SET expires_at = now() - interval '1 second' "
        "WHERE token_hash = $1",
        tokens.hash_token(expired),
    )
    cases = [
        ("unknown-link-000", 404, "token_not_found", "We do not recognise this link"),
        (replaced, 410, "token_gone", "This link has been replaced"),
        (expired, 410, "token_gone", "This link has expired"),
    ]
    for token, status, code, title in cases:
        page = await _onboard(served, token, AS_BROWSER)
        _assert_page(page, status, title, f"{PLATFORM} for a new", code)
        _assert_json_error(await _onboard(served, token, AS_JSON), status, code)
        # No Accept preference (`*/*`) is a program: JSON, as it always was.
        _assert_json_error(await _onboard(served, token, {"Accept": "*/*"}), status, code)

    for route in ("refresh", "return"):
        page = await _connect(served, route, "NoSuchState", AS_BROWSER)
        _assert_page(page, 400, "We do not recognise this link")
        _assert_json_error(
            await _connect(served, route, "NoSuchState", AS_JSON), 400, "invalid_state"
        )


@pytest.mark.slow
async def test_return_page_says_what_is_due_then_complete(served: Served) -> None:
    user_id, _ = await served.signup()
    token = _token(await served.issue(user_id))
    opened = await _onboard(served, token, AS_JSON)
    assert opened.status_code == 200, opened.text
    state = await _state(served, user_id)

    # Left Stripe's page half way: the sandbox's new account has requirements due.
    due = await _connect(served, "return", state, AS_BROWSER)
    assert due.status_code == 200, due.text
    assert "Stripe needs a few more details" in due.text
    assert "Add the bank account your payouts go to." in due.text
    assert due.text.count("Accept Stripe&#39;s services agreement.") == 1
    assert "tos_acceptance" not in due.text
    continue_url = f'href="/v1/connect/refresh?state={state}"'
    assert continue_url in due.text and "Continue with Stripe" in due.text
    assert f'href="{DASHBOARD}"' in due.text

    # A requirement nobody has put into words is still shown.
    account_id = (await served.status(user_id))["connect_account_id"]
    new_due = ["external_account", "company.brand_new_field"]
    changed = await served.stack.sandbox.http.post(
        f"/_sandbox/accounts/{account_id}/update",
        json={"requirements": {"currently_due": new_due, "past_due": new_due}},
    )
    changed.raise_for_status()
    again = await _connect(served, "return", state, AS_BROWSER)
    assert "Stripe also needs: company, brand new field (company.brand_new_field)." in again.text
    assert "services agreement" not in again.text

    # "Continue with Stripe": a page at once, which continues by itself to the link.
    preparing = await _connect(served, "refresh", state, AS_BROWSER)
    assert preparing.status_code == 200, preparing.text
    assert "Preparing your secure Stripe link" in preparing.text
    onward = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', preparing.text)
    assert onward is not None
    followed = await served.http.get(onward.group(1).replace("&amp;", "&"), headers=AS_BROWSER)
    assert followed.status_code == 303, followed.text
    assert "/_sandbox/pages/connect/" in followed.headers["location"]

    completed = await served.stack.sandbox.http.post(
        f"/_sandbox/accounts/{account_id}/complete_onboarding", json={}
    )
    completed.raise_for_status()
    done = await _connect(served, "return", state, AS_BROWSER)
    assert done.status_code == 200, done.text
    assert "Onboarding is complete" in done.text and "Thank you" in done.text
    assert "Continue with Stripe" not in done.text
    assert (await _connect(served, "return", state, AS_JSON)).json() == {
        "user_id": user_id,
        "onboarding_complete": True,
    }

    # The used link, and Stripe's refresh for a finished onboarding: pages, or JSON.
    used = await _onboard(served, token, AS_BROWSER)
    _assert_page(used, 410, "Onboarding is already complete")
    _assert_json_error(await _onboard(served, token, AS_JSON), 410, "token_gone")
    refresh = await _connect(served, "refresh", state, AS_BROWSER)
    _assert_page(refresh, 400, "Onboarding is already complete")
    _assert_json_error(await _connect(served, "refresh", state, AS_JSON), 400, "invalid_state")


@pytest.mark.browser
@pytest.mark.slow
async def test_onboarding_pages_in_chromium(served: Served, browser: Browser) -> None:
    user_id, _ = await served.signup()
    issued = await served.issue(user_id)
    page = await browser.new_page()
    try:
        # To Stripe's (the sandbox's) page, then back without finishing.
        await page.goto(issued["url"])
        assert "/_sandbox/pages/connect/" in page.url
        state = await _state(served, user_id)
        await page.goto(f"{served.base_url}/v1/connect/return?state={state}")
        await page.get_by_role("heading", name="Stripe needs a few more details").wait_for()
        await screenshot(page, "onboarding-return-due")
        await assert_accessible(page)

        await _continue_through_preparing_page(page)
        async with page.expect_navigation(url=f"{served.base_url}/v1/connect/return**"):
            await page.click("#complete")
        await page.get_by_role("heading", name="Onboarding is complete").wait_for()
        await screenshot(page, "onboarding-return-complete")
        await assert_accessible(page)

        await _error_pages(page, issued["url"], served.base_url)
    finally:
        await page.close()


async def _continue_through_preparing_page(page: Page) -> None:
    """ "Continue with Stripe" shows the preparing page, whose meta refresh asks for the
    link by itself. That request is answered 204 here (a browser then stays on the page)
    to look at the page; its own link then goes on to Stripe's page."""
    refreshed = asyncio.Event()

    async def no_content(route: Route) -> None:
        refreshed.set()
        await route.fulfill(status=204)

    await page.route(lambda url: "go=true" in url, no_content)
    await page.get_by_role("link", name="Continue with Stripe").click()
    await asyncio.wait_for(refreshed.wait(), timeout=30)
    await page.get_by_role("heading", name="Preparing your secure Stripe link…").wait_for()
    await screenshot(page, "onboarding-preparing")
    await assert_accessible(page)
    await page.unroute_all()
    async with page.expect_navigation(url="**/_sandbox/pages/connect/**"):
        await page.get_by_role("link", name="Continue to Stripe").click()


async def _error_pages(page: Page, used_url: str, base_url: str) -> None:
    used = await page.goto(used_url)
    assert used is not None and used.status == 410
    await page.get_by_role("heading", name="Onboarding is already complete").wait_for()
    await screenshot(page, "onboarding-link-used")
    await assert_accessible(page)

    await page.set_viewport_size({"width": 320, "height": 640})
    unknown = await page.goto(f"{base_url}/v1/onboard?token=no-such-link")
    assert unknown is not None and unknown.status == 404
    await page.get_by_role("heading", name="We do not recognise this link").wait_for()
    await screenshot(page, "onboarding-link-unknown-320")
    await assert_accessible(page)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"the page scrolls sideways at 320 px ({width} px wide)"
