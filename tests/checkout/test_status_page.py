"""The hosted status page: Stripe's return lands on it (unless the platform set its own
CHECKOUT_SUCCESS_URL), it moves on with webhooks dropped (the return re-reads) and says
"being prepared" while the worker is stopped, moving on when a worker is back. Its link
is a signed view token: an expired or forged one gets a page in a browser and the JSON
error shape for a program."""

from __future__ import annotations

import signal
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from api.app import create_app
from api.routes.status_page import STATE_POLLS_PER_MINUTE
from onramp import checkout
from onramp.repositories import checkout_runs, users
from onramp.repositories.checkout_runs import CheckoutRunChange, NewCheckoutRun
from onramp.settings import ApiSettings
from onramp.view_tokens import VIEW_TOKEN_TTL_SECONDS, issue_view_token
from tests.checkout.conftest import CheckoutStack, OpenStack
from tests.checkout.test_worker_down import _paid_and_blocked_in_workspace_step, _release
from tests.support.api_server import serve_app
from tests.support.axe import accessible_at
from tests.support.browser import screenshot
from tests.support.harness import TOKEN_SECRET
from tests.support.polling import eventually
from worker.main import EXIT_STOP_FORCED, LOCAL_STEP_MARGIN

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JSON_ACCEPT = {"Accept": "application/json"}
HTML_ACCEPT = {"Accept": BROWSER_ACCEPT}
STATUS_PAGE = "/v1/checkout/status-page"
# The hosted page is the default: no CHECKOUT_SUCCESS_URL.
HOSTED = {"checkout_success_url": None, "checkout_return_reread_seconds": 0.0}


async def _return(stack: CheckoutStack, session_id: str) -> str:
    """Stripe's redirect back: 303 to the status page; its view token."""
    back = await stack.api.get(
        "/v1/checkout/return", params={"session_id": session_id}, follow_redirects=False
    )
    assert back.status_code == 303, back.text
    location = back.headers["location"]
    assert location.startswith(f"{STATUS_PAGE}?view="), location
    return parse_qs(urlsplit(location).query)["view"][0]


async def _state(stack: CheckoutStack, view: str) -> dict[str, Any]:
    answer = await stack.api.get(f"{STATUS_PAGE}/state", params={"view": view})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _page(stack: CheckoutStack, view: str) -> str:
    answer = await stack.api.get(STATUS_PAGE, params={"view": view}, headers=HTML_ACCEPT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


@pytest.mark.slow
async def test_status_page_moves_on_with_webhooks_dropped(checkout_stack: OpenStack) -> None:
    # The reconcile interval is far away and no webhook arrives: only the return re-reads.
    async with checkout_stack(webhooks=False, reconcile_after=600.0, api_overrides=HOSTED) as s:
        user_id, address = await s.signup()
        session_id = (await s.checkout(user_id))["checkout_session_id"]

        # Back before paying (the browser's back button): still confirming.
        early = await _return(s, session_id)
        state = await _state(s, early)
        assert (state["stage"], state["next_action"]) == ("confirming", "pay")
        assert not state["final"]
        page = await _page(s, early)
        assert "Confirming your payment…" in page
        assert '<meta http-equiv="refresh" content="5">' in page
        assert 'src="/static/status.js"' in page

        assert (await s.pay(session_id)).status_code == 200
        view = await _return(s, session_id)
        moved = await eventually(
            lambda: _state(s, view), lambda body: body["stage"] == "check_email", seconds=20
        )
        assert moved["next_action"] == "set_password"
        assert [step["state"] for step in moved["steps"]] == ["done", "done", "done", "current"]
        assert moved["actions"] == [
            {
                "label": "Send the email again",
                "url": "/v1/portal/set-password/resend",
                "method": "post",
                "primary": True,
            }
        ]
        # The state names no email address and no secret.
        assert address not in str(moved) and "@" not in str(moved)
        page = await _page(s, view)
        assert "Check your email to set your password" in page
        assert 'action="/v1/portal/set-password/resend"' in page
        assert f'name="view" value="{view}"' in page
        assert 'aria-current="step"' in page
        # The early link (same session, same user) has moved on too.
        assert (await _state(s, early))["stage"] == "check_email"


async def _open_page(browser: Browser, url: str) -> Page:
    page = await browser.new_page()
    await page.goto(url)
    await page.evaluate("window.__loaded = true")
    return page


@pytest.mark.slow
@pytest.mark.browser
async def test_status_page_says_preparing_while_the_worker_is_stopped(
    checkout_stack: OpenStack, workspace_gate: asyncpg.Connection, browser: Browser
) -> None:
    async with checkout_stack(worker=False, api_overrides=HOSTED) as stack:
        first, user_id, _ = await _paid_and_blocked_in_workspace_step(stack, workspace_gate)
        first.signal(signal.SIGTERM)
        bound = 1 + LOCAL_STEP_MARGIN.total_seconds()

        async def exit_code() -> int | None:
            return first.exit_code()

        code = await eventually(exit_code, lambda code: code is not None, seconds=bound + 15)
        assert code == EXIT_STOP_FORCED
        await _release(workspace_gate, user_id)

        # No worker at all: the page is answered from Postgres and says so.
        session_id = (await stack.status(user_id))["checkout_session_id"]
        view = await _return(stack, session_id)
        state = await _state(stack, view)
        assert (state["stage"], state["next_action"]) == ("preparing", "wait_provisioning")
        assert [step["state"] for step in state["steps"]] == ["done", "current", "todo", "todo"]
        assert "Your workspace is being prepared" in await _page(stack, view)
        url = f"{stack.api_url}{STATUS_PAGE}?view={view}"
        page = await _open_page(browser, url)
        await expect(page.locator("h1")).to_have_text("Your workspace is being prepared")
        await accessible_at(browser, url)
        await screenshot(page, "status-preparing-worker-down")

        # A worker again: the same page moves on by itself, without a reload.
        stack.start_worker_process()
        moved = await eventually(
            lambda: _state(stack, view), lambda body: body["stage"] == "check_email", seconds=90
        )
        assert moved["next_action"] == "set_password"
        await expect(page.locator("h1")).to_have_text(
            "Check your email to set your password", timeout=30_000
        )
        assert await page.evaluate("window.__loaded === true")
        await expect(page.get_by_role("button", name="Send the email again")).to_be_visible()
        await accessible_at(browser, url)
        await screenshot(page, "status-check-email")
        assert "Check your email to set your password" in await _page(stack, view)


def _token(user_id: str, *, issued: float) -> str:
    return issue_view_token(
        TOKEN_SECRET,
        user_id=user_id,
        session_id="cs_test_0000000000",
        now=issued,
        ttl_seconds=VIEW_TOKEN_TTL_SECONDS,
    )


def _bad_links() -> list[tuple[str, int, str]]:
    someone = "00000000-0000-4000-8000-000000000000"
    expired = _token(someone, issued=time.time() - VIEW_TOKEN_TTL_SECONDS - 5)
    body, _, signature = _token(someone, issued=time.time()).partition(".")
    forged = f"{body}.{signature[::-1]}"
    unknown_user = _token(someone, issued=time.time())
    return [
        (expired, 410, "view_token_expired"),
        (forged, 404, "view_token_invalid"),
        ("not-a-token", 404, "view_token_invalid"),
        (unknown_user, 404, "view_token_invalid"),
    ]


async def test_expired_and_forged_view_tokens(app_client: httpx.AsyncClient) -> None:
    for view, status, code in _bad_links():
        for path in (STATUS_PAGE, f"{STATUS_PAGE}/state"):
            as_json = await app_client.get(path, params={"view": view}, headers=JSON_ACCEPT)
            assert as_json.status_code == status, (path, as_json.text)
            assert as_json.json()["error"]["code"] == code
            as_page = await app_client.get(path, params={"view": view}, headers=HTML_ACCEPT)
            assert as_page.status_code == status, (path, as_page.text)
            assert as_page.headers["content-type"].startswith("text/html")
            assert "Back to " in as_page.text
        if status == 410:
            assert "This status link has expired" in as_page.text


async def test_an_unknown_session_returns_to_a_page_or_the_json_error(
    app_client: httpx.AsyncClient,
) -> None:
    params = {"session_id": "cs_test_unknownSession"}
    as_page = await app_client.get("/v1/checkout/return", params=params, headers=HTML_ACCEPT)
    assert as_page.status_code == 404
    assert as_page.headers["content-type"].startswith("text/html")
    assert "No checkout has this session" in as_page.text
    as_json = await app_client.get("/v1/checkout/return", params=params, headers=JSON_ACCEPT)
    assert as_json.status_code == 404
    assert as_json.json()["error"]["code"] == "checkout_not_found"


async def test_state_polls_of_one_link_are_rate_limited(app_client: httpx.AsyncClient) -> None:
    view = _token("00000000-0000-4000-8000-000000000001", issued=time.time())
    answers = [
        (await app_client.get(f"{STATUS_PAGE}/state", params={"view": view})).status_code
        for _ in range(STATE_POLLS_PER_MINUTE + 5)
    ]
    # A poll a second is within the limit; an unknown user's link is counted all the same.
    assert answers[:STATE_POLLS_PER_MINUTE] == [404] * STATE_POLLS_PER_MINUTE
    assert answers[STATE_POLLS_PER_MINUTE:] == [429] * 5


@pytest.mark.browser
async def test_expired_and_forged_links_in_a_browser(
    api_settings: ApiSettings, browser: Browser
) -> None:
    async with serve_app(create_app(api_settings)) as base_url:
        page = await browser.new_page()
        for view, status, _ in _bad_links()[:2]:
            url = f"{base_url}{STATUS_PAGE}?view={view}"
            answer = await page.goto(url)
            assert answer is not None and answer.status == status
            await expect(page.get_by_role("link", name="Back to onramp")).to_be_visible()
            await screenshot(page, f"status-link-{status}")
            await accessible_at(browser, url)


@dataclass(frozen=True)
class Stage:
    """A checkout run written as its workflow would have, and what its page says."""

    name: str
    change: dict[str, str]
    heading: str
    shows: str
    final: bool = False
    requires_action: bool = False


INVOICE = "https://invoice.stripe.test/i/in_TestStatusPage1"
STAGES = [
    Stage("open", {}, "Confirming your payment…", "moves on by itself"),
    Stage(
        "delayed",
        {"session_status": "complete", "payment_state": "confirming"},
        "Confirming your payment…",
        "bank transfer",
    ),
    Stage("authentication", {}, "Confirming your payment…", "Confirm the payment", False, True),
    Stage(
        "failed",
        {"session_status": "complete", "payment_outcome": "failed"},
        "Your payment was not completed",
        "did not go through",
        final=True,
    ),
    Stage(
        "expired",
        {"session_status": "expired", "payment_outcome": "expired"},
        "Your payment was not completed",
        "expired",
        final=True,
    ),
    Stage(
        "preparing",
        {"session_status": "complete", "payment_state": "paid", "provisioning_state": "running"},
        "Your workspace is being prepared",
        "Your payment is received",
    ),
    Stage(
        "check-email",
        {
            "session_status": "complete",
            "payment_state": "paid",
            "provisioning_state": "completed",
            "password_state": "sent",
        },
        "Check your email to set your password",
        "Send the email again",
    ),
    Stage(
        "all-set",
        {
            "session_status": "complete",
            "payment_state": "paid",
            "provisioning_state": "completed",
            "password_state": "set",
        },
        "You are all set",
        "Go to your dashboard",
        final=True,
    ),
]


async def _user_at(db: asyncpg.Pool, stage: Stage) -> str:
    """A user whose latest checkout run is at `stage` (rows as the workflows write them)."""
    user_id = str(uuid.uuid4())
    await users.insert_profile(db, user_id, f"page-{user_id[:8]}@example.com", "page", False)
    run_id = f"checkout-{user_id}/1"
    session = f"cs_test_{uuid.uuid4().hex}"
    await checkout.record_session(
        db,
        NewCheckoutRun(
            run_id=run_id,
            workflow_id=f"checkout-{user_id}",
            user_id=user_id,
            tier="pro",
            billing_cycle="monthly",
            session_id=session,
            session_url=None,
        ),
    )
    await checkout_runs.record_state(db, CheckoutRunChange.model_validate(
        {"run_id": run_id, **stage.change}
    ))  # fmt: skip
    if stage.requires_action:
        await db.execute(
            "INSERT INTO billing (user_id, tier, status, stripe_subscription_id, payment_state, "
            "payment_action_kind, payment_action_invoice_id, payment_action_url) VALUES "
            "($1, 'free', 'incomplete', $2, 'requires_action', 'new_subscription', $3, $4)",
            uuid.UUID(user_id),
            f"sub_{uuid.uuid4().hex[:14]}",
            "in_TestStatusPage1",
            INVOICE,
        )
    return user_id


@pytest.mark.browser
async def test_every_stage_in_a_browser(
    api_settings: ApiSettings, db_pool: asyncpg.Pool, browser: Browser
) -> None:
    """Each stage's page: its words, its way forward, no meta refresh once final, no
    horizontal scrolling at 320 px, and no serious or critical axe violation."""
    async with serve_app(create_app(api_settings)) as base_url:
        for stage in STAGES:
            user_id = await _user_at(db_pool, stage)
            view = _token(user_id, issued=time.time())
            url = f"{base_url}{STATUS_PAGE}?view={view}"
            page = await browser.new_page(viewport={"width": 320, "height": 640})
            answer = await page.goto(url)
            assert answer is not None and answer.status == 200
            await expect(page.locator("h1")).to_have_text(stage.heading)
            await expect(page.locator("#status")).to_contain_text(stage.shows)
            html = await answer.text()
            assert ('http-equiv="refresh"' in html) is not stage.final, stage.name
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 320, (stage.name, width)
            await screenshot(page, f"status-{stage.name}-320")
            await page.set_viewport_size({"width": 1280, "height": 800})
            await screenshot(page, f"status-{stage.name}")
            if stage.requires_action:
                link = page.get_by_role("link", name="Confirm the payment")
                await expect(link).to_have_attribute("href", INVOICE)
            await page.close()
            await accessible_at(browser, url)
