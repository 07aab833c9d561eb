"""Hosted pages standing in for Stripe's: Checkout, Connect onboarding and invoices.

Plain HTML forms (no JavaScript): a button posts, the sandbox acts, then redirects (303)
to the session's `success_url` or the link's `return_url`, as Stripe's pages would.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path
from string import Template
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from sandbox.domain import billing
from sandbox.domain.errors import StripeError
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import accounts, checkout, checkout_payment
from sandbox.domain.runtime import Sandbox
from sandbox.http.endpoints import Handler, bind, request_ctx

TEMPLATES = Path(__file__).parent / "templates"

CHOICES = [
    ("pm_card_visa", "Visa •••• 4242 (succeeds)"),
    ("pm_card_mastercard", "Mastercard •••• 4444 (succeeds)"),
    ("pm_card_authenticationRequired", "Visa •••• 3184 (authenticated on this page, succeeds)"),
    ("pm_card_chargeDeclined", "Visa •••• 0002 (declined)"),
    ("pm_card_chargeDeclinedInsufficientFunds", "Visa •••• 9995 (insufficient funds)"),
    ("pm_delayed_success", "Bank debit •••• 6789 (settles later, succeeds)"),
    ("pm_delayed_fail", "Bank debit •••• 1116 (settles later, fails)"),
]


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = _template("layout.html").substitute(title=escape(title), body=body)
    return HTMLResponse(html, status)


def _message(heading: str, message: str, status: int, link: str | None = None) -> HTMLResponse:
    anchor = f'<p><a id="continue" href="{escape(link)}">Continue</a></p>' if link else ""
    body = _template("message.html").substitute(
        heading=escape(heading), message=escape(message), link=anchor
    )
    return _page(heading, body, status)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace")))


def _checkout_page(sb: Sandbox, session: Obj, error: str | None, status: int = 200) -> HTMLResponse:
    if session["mode"] == "setup":
        return _setup_page(session, error, status)
    items = checkout.line_items(sb.ctx(), session)
    rows = "\n".join(
        f"<tr><td>{escape(str(item['description']))} &times; {item['quantity']}</td>"
        f'<td class="amount">{billing.money(item["amount_total"], item["currency"])}</td></tr>'
        for item in items
    )
    body = _template("checkout.html").substitute(
        session_id=escape(session["id"]),
        error=f'<p class="error" id="error">{escape(error)}</p>' if error else "",
        rows=rows,
        total=billing.money(session["amount_total"], session["currency"]),
        options=_options(),
        cancel=_cancel_link(session),
    )
    return _page("Checkout", body, status)


def _setup_page(session: Obj, error: str | None, status: int) -> HTMLResponse:
    """A setup-mode session's page: it saves a card for later, charges nothing."""
    body = _template("setup.html").substitute(
        session_id=escape(session["id"]),
        error=f'<p class="error" id="error">{escape(error)}</p>' if error else "",
        options=_options(),
        cancel=_cancel_link(session),
    )
    return _page("Save a payment method", body, status)


def _options() -> str:
    return "\n".join(
        f'    <option value="{value}">{escape(label)}</option>' for value, label in CHOICES
    )


def _cancel_link(session: Obj) -> str:
    if not session.get("cancel_url"):
        return ""
    return f'<p class="muted"><a id="cancel" href="{escape(session["cancel_url"])}">Cancel</a></p>'


async def show_checkout(sb: Sandbox, request: Request) -> Response:
    session = sb.store.get(request.path_params["id"], "checkout.session")
    if session is None:
        return _message("Not found", "No such checkout session.", 404)
    if session["status"] == "open" and session["expires_at"] <= sb.clock.now():
        async with sb.lock:
            checkout.expire_session(request_ctx(sb, request), session)
    if session["status"] == "complete":
        return _message(
            "Already paid",
            "This checkout session is complete.",
            200,
            checkout.success_redirect(session),
        )
    if session["status"] == "expired":
        return _message(
            "Expired", "This checkout session has expired.", 410, session.get("cancel_url")
        )
    return _checkout_page(sb, session, None)


async def pay_checkout(sb: Sandbox, request: Request) -> Response:
    form = await _form(request)
    token = form.get("payment_method") or "pm_card_visa"
    session = sb.store.get(request.path_params["id"], "checkout.session")
    if session is None:
        return _message("Not found", "No such checkout session.", 404)
    try:
        async with sb.lock:
            checkout_payment.pay_session(request_ctx(sb, request), session, token)
            sb.store.dirty = True
    except StripeError as exc:
        if session["status"] != "open":
            return _message("Not payable", exc.message, exc.status)
        return _checkout_page(sb, session, exc.message, exc.status)
    target = checkout.success_redirect(session)
    if target is None:
        return _message("Thank you", "Your subscription is active.", 200)
    return RedirectResponse(target, 303)


def _link_state(sb: Sandbox, token: str) -> tuple[Obj | None, str | None]:
    link = sb.store.links.get(token)
    if link is None:
        return None, "This link is not valid."
    if link["used"] or sb.clock.now() > link["expires_at"]:
        return link, "This link has expired or was already used."
    return link, None


async def show_connect(sb: Sandbox, request: Request) -> Response:
    token = request.path_params["token"]
    link, problem = _link_state(sb, token)
    if link is not None and problem is None and link["visited"]:
        problem = "This link has expired or was already used."
    if problem is not None:
        # Stripe sends the user to refresh_url when a link is expired or was visited.
        if link is not None and link.get("refresh_url"):
            return RedirectResponse(link["refresh_url"], 303)
        return _message("Link expired", problem, 404 if link is None else 410)
    assert link is not None
    link["visited"] = True
    sb.store.dirty = True
    account = sb.store.get(link["account"], "account") or {}
    body = _template("connect.html").substitute(
        account_id=escape(str(link["account"])),
        email=escape(str(account.get("email") or "no email")),
        token=escape(token),
    )
    return _page("Onboarding", body)


async def complete_connect(sb: Sandbox, request: Request) -> Response:
    link, problem = _link_state(sb, request.path_params["token"])
    if link is None or problem is not None:
        return _message("Link expired", problem or "", 404 if link is None else 410)
    try:
        async with sb.lock:
            account = accounts.get_account(request_ctx(sb, request), link["account"])
            link["used"] = True
            accounts.complete_onboarding(request_ctx(sb, request), account)
            sb.store.dirty = True
    except StripeError as exc:
        return _message("Error", exc.message, exc.status)
    if link.get("return_url"):
        return RedirectResponse(link["return_url"], 303)
    return _message("Done", "Onboarding is complete.", 200)


async def show_invoice(sb: Sandbox, request: Request) -> Response:
    inv = sb.store.get(request.path_params["id"], "invoice")
    if inv is None:
        return _message("Not found", "No such invoice.", 404)
    rows = "\n".join(
        f"<tr><td>{escape(str(line['description']))}</td>"
        f'<td class="amount">{billing.money(line["amount"], inv["currency"])}</td></tr>'
        for line in inv["lines"]["data"]
    )
    action = ""
    if billing.awaiting_authentication(sb.ctx(), inv):
        # Stripe's page runs the card's 3-D Secure challenge; here the customer picks
        # its outcome.
        target = f"/_sandbox/pages/invoices/{escape(inv['id'])}/authenticate"
        action += (
            '<p id="requires_action">This payment needs your authentication.</p>'
            f'<form method="post" action="{target}">'
            '<input type="hidden" name="outcome" value="succeed">'
            '<button id="authenticate" type="submit">Authenticate</button></form>'
            f'<form method="post" action="{target}">'
            '<input type="hidden" name="outcome" value="fail">'
            '<button id="fail_authentication" type="submit">Fail authentication</button>'
            "</form>"
        )
    if inv["status"] == "open":
        action += (
            f'<form method="post" action="/_sandbox/pages/invoices/{escape(inv["id"])}/pay">'
            '<button id="pay" type="submit">Pay with Visa •••• 4242</button></form>'
        )
    body = _template("invoice.html").substitute(
        number=escape(str(inv["number"] or "(draft)")),
        invoice_id=escape(inv["id"]),
        status=escape(inv["status"]),
        rows=rows,
        amount_due=billing.money(inv["amount_remaining"], inv["currency"]),
        action=action,
    )
    return _page("Invoice", body)


async def pay_invoice(sb: Sandbox, request: Request) -> Response:
    inv = sb.store.get(request.path_params["id"], "invoice")
    if inv is None:
        return _message("Not found", "No such invoice.", 404)
    if inv["status"] == "open":
        async with sb.lock:
            ctx = request_ctx(sb, request)
            billing.attempt_payment(ctx, inv, None, None, forced=True)
            sub_id = billing.subscription_of(inv)
            sub = sb.store.get(sub_id, "subscription") if sub_id else None
            if sub is not None:
                billing.settle_status(ctx, sub)
            sb.store.dirty = True
    return RedirectResponse(f"/_sandbox/pages/invoices/{inv['id']}", 303)


async def authenticate_invoice(sb: Sandbox, request: Request) -> Response:
    form = await _form(request)
    inv = sb.store.get(request.path_params["id"], "invoice")
    if inv is None:
        return _message("Not found", "No such invoice.", 404)
    async with sb.lock:
        if billing.awaiting_authentication(sb.ctx(), inv):
            ctx = request_ctx(sb, request)
            billing.authenticate(ctx, inv, succeed=form.get("outcome") != "fail")
            sb.store.dirty = True
    return RedirectResponse(f"/_sandbox/pages/invoices/{inv['id']}", 303)


async def invoice_pdf(sb: Sandbox, request: Request) -> Response:
    inv = sb.store.get(request.path_params["id"], "invoice")
    if inv is None:
        return PlainTextResponse("No such invoice.", 404)
    lines = [f"Invoice {inv['number']} ({inv['id']}) — {inv['status']}"]
    lines += [
        f"{line['description']}: {billing.money(line['amount'], inv['currency'])}"
        for line in inv["lines"]["data"]
    ]
    lines.append(f"Total: {billing.money(inv['total'], inv['currency'])}")
    return PlainTextResponse("\n".join(lines) + "\n")


PAGE_ROUTES: list[tuple[str, list[str], Handler]] = [
    ("/checkout/{id}", ["GET"], show_checkout),
    ("/checkout/{id}/pay", ["POST"], pay_checkout),
    ("/connect/{token}", ["GET"], show_connect),
    ("/connect/{token}/complete", ["POST"], complete_connect),
    ("/invoices/{id}", ["GET"], show_invoice),
    ("/invoices/{id}/pay", ["POST"], pay_invoice),
    ("/invoices/{id}/authenticate", ["POST"], authenticate_invoice),
    ("/invoices/{id}/pdf", ["GET"], invoice_pdf),
]


def routes(sb: Sandbox) -> list[Route]:
    """The hosted-page routes, mounted at `/_sandbox/pages`."""
    return bind(sb, PAGE_ROUTES)
