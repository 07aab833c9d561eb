"""The set-password page and the pages of links that no longer work, in Chromium: axe
finds no serious or critical violation at 320 px and on a desktop; the strength hint
follows the typing; a refused password is explained inline; a set password leads to the
dashboard, with JavaScript and without it. Screenshots of each step are saved under
test-artifacts/screenshots/."""

from __future__ import annotations

import asyncpg
import pytest
from playwright.async_api import Browser, Page, Route, ViewportSize

from api.app import create_app
from onramp.settings import ApiSettings
from onramp.tokens import hash_token
from tests.portal.conftest import issue_token
from tests.support.api_server import serve_app
from tests.support.axe import assert_accessible
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DASHBOARD = "https://platform.example/dashboard"
GOOD = "violet kettle orbit lantern"
PHONE = ViewportSize(width=320, height=640)
DESKTOP = ViewportSize(width=1280, height=800)


async def _dashboard(route: Route) -> None:
    await route.fulfill(status=200, content_type="text/html", body="<h1>Dashboard</h1>")


async def _page(browser: Browser, *, javascript: bool = True, width: int = 1280) -> Page:
    viewport = PHONE if width == PHONE["width"] else DESKTOP
    context = await browser.new_context(java_script_enabled=javascript, viewport=viewport)
    page = await context.new_page()
    await page.route(DASHBOARD, _dashboard)
    return page


async def _state(pool: asyncpg.Pool, token: str) -> str:
    state: str = await pool.fetchval(
        "SELECT state FROM password_tokens WHERE token_hash = $1", hash_token(token)
    )
    return state


async def test_setting_a_password_in_a_browser(
    api_settings: ApiSettings, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    settings = api_settings.model_copy(update={"dashboard_url": DASHBOARD})
    issued = await issue_token(db_pool)
    async with serve_app(create_app(settings)) as base_url:
        link = f"{base_url}/v1/portal/set-password?token={issued.token}"
        phone = await _page(browser, width=320)
        await phone.goto(link)
        await assert_accessible(phone)
        await screenshot(phone, "set-password-320")
        await phone.context.close()

        page = await _page(browser)
        await page.goto(link)
        await assert_accessible(page)
        field = page.get_by_label("New password")
        await field.fill("password1234")
        hint = page.locator("#strength-hint")
        await hint.filter(has_text="Very weak").or_(hint.filter(has_text="Weak")).wait_for()
        await screenshot(page, "set-password-weak-hint")
        # Sent anyway: the API refuses it and the page says why, next to the field.
        await page.get_by_role("button", name="Set password").click()
        error = page.locator("#password-error")
        await error.filter(has_text="too easy to guess").wait_for()
        assert await field.get_attribute("aria-invalid") == "true"
        await assert_accessible(page)
        await screenshot(page, "set-password-refused")

        await field.fill(GOOD)
        await hint.filter(has_text="Strong").or_(hint.filter(has_text="Very strong")).wait_for()
        assert await error.text_content() == ""
        await page.get_by_role("button", name="Set password").click()
        await page.locator("#result").filter(has_text="Your password is set.").wait_for()
        await page.wait_for_url(DASHBOARD)
        assert await _state(db_pool, issued.token) == "used"

        # The link again: a page that says so and offers a new link.
        await page.goto(link)
        await page.get_by_text("This link was already used").wait_for()
        await assert_accessible(page)
        await screenshot(page, "set-password-link-used")
        await page.get_by_role("button", name="Email me a new link").click()
        await page.get_by_text("we sent a new link to its address").wait_for()
        await assert_accessible(page)
        await screenshot(page, "set-password-resend-accepted")
        await page.context.close()


async def test_the_pages_without_javascript_and_for_unknown_links(
    api_settings: ApiSettings, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    settings = api_settings.model_copy(update={"dashboard_url": DASHBOARD})
    issued = await issue_token(db_pool)
    expired = await issue_token(db_pool, "expired")
    async with serve_app(create_app(settings)) as base_url:
        page = await _page(browser, javascript=False, width=320)
        await page.goto(f"{base_url}/v1/portal/set-password?token={issued.token}")
        await page.get_by_label("New password").fill("password1234")
        await page.get_by_role("button", name="Set password").click()
        await page.locator("#password-error").filter(has_text="too easy to guess").wait_for()
        await screenshot(page, "set-password-refused-without-javascript-320")
        await page.get_by_label("New password").fill(GOOD)
        await page.get_by_role("button", name="Set password").click()
        await page.wait_for_url(DASHBOARD)
        assert await _state(db_pool, issued.token) == "used"
        await page.context.close()

        # axe runs in the page, so these pages are checked with JavaScript on.
        page = await _page(browser, width=320)
        for name, token, said in (
            ("expired", expired.token, "This link has expired."),
            ("unknown", "u" * 43, "This link is not valid"),
        ):
            response = await page.goto(f"{base_url}/v1/portal/set-password?token={token}")
            assert response is not None and response.status == (410 if name == "expired" else 404)
            await page.get_by_text(said).wait_for()
            await assert_accessible(page)
            await screenshot(page, f"set-password-link-{name}-320")

        # The unknown link's way forward: a page asking for the email address.
        await page.get_by_role("link", name="Email me a new link").click()
        await page.get_by_label("Email address").fill("nobody@example.com")
        await assert_accessible(page)
        await screenshot(page, "set-password-resend-form-320")
        await page.get_by_role("button", name="Email me a new link").click()
        await page.get_by_text("we sent a new link to its address").wait_for()
        await page.context.close()
