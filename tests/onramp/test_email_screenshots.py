"""Each HTML email opened in Chromium at a phone's width and a desktop's: a screenshot
of each (`test-artifacts/screenshots/email-<template>.png`, `…-320.png` for the phone),
no serious or critical axe-core violation, and nothing wider than the screen."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser

from onramp.emails import TEMPLATE_NAMES, EmailBrand, TemplateName, render_email
from onramp.emails.preview import sample_fields
from tests.support.axe import assert_accessible
from tests.support.browser import screenshot

pytestmark = pytest.mark.browser

BRAND = EmailBrand(platform_name="Acme Tools", public_url="https://api.acme.test")
WIDTHS = (320, 800)


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
async def test_each_html_email_reads_well_in_a_browser(
    browser: Browser, template: TemplateName
) -> None:
    fields = sample_fields(
        template,
        set_password_url="https://api.acme.test/v1/portal/set-password",
        now=datetime.now(UTC),
    )
    rendered = render_email(template, brand=BRAND, fields=fields)
    for width in WIDTHS:
        page = await browser.new_page(viewport={"width": width, "height": 800})
        try:
            await page.set_content(rendered.html)
            assert await page.title() == rendered.subject
            # The preheader is for the inbox's preview line, not the reader.
            preheader = page.locator("body > div[aria-hidden=true]")
            assert await preheader.text_content() == rendered.preheader
            assert not await preheader.is_visible()
            assert await page.get_by_role("heading", level=1).is_visible()
            overflow = await page.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{template} is {overflow}px wider than {width}px"
            await screenshot(page, f"email-{template}" + ("" if width == 800 else f"-{width}"))
            await assert_accessible(page)
        finally:
            await page.close()
