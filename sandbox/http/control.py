"""The `/_sandbox/` control API (JSON in and out): simulate what customers, Stripe and
time would do, inject faults, steer webhooks, and read counters and the request log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.domain import billing
from sandbox.domain.cards import AUTHENTICATION_REQUIRED, CARDS, Decline
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, bad_param, invalid, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import accounts, checkout, invoices, payment_methods, test_clocks
from sandbox.domain.resources.subscriptions import get_subscription
from sandbox.domain.runtime import Sandbox
from sandbox.domain.scheduler import run_due

Action = Callable[[Ctx, Obj], Obj]


def _error(exc: StripeError) -> Response:
    return JSONResponse(exc.body(), exc.status, headers=exc.headers)


async def _json(request: Request) -> Obj:
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise bad_param(f"Invalid JSON body: {exc}", "body") from None
    if not isinstance(data, dict):
        raise bad_param("The JSON body must be an object.", "body")
    return data


def _rate(data: Obj, name: str) -> float:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad_param(f"{name} must be a number of requests per second (0: off)", name)
    return float(value)


def routes(sb: Sandbox) -> list[Route]:
    """The control routes, mounted at `/_sandbox`."""

    def locked(action: Action) -> Callable[[Request], Any]:
        """Run a state-changing action under the sandbox lock, answering JSON or an error."""

        async def endpoint(request: Request) -> Response:
            try:
                data = await _json(request)
                async with sb.lock:
                    ctx = Ctx(
                        sb,
                        path=dict(request.path_params),
                        base_url=str(request.base_url).rstrip("/"),
                        frozen_time=test_clocks.frozen_time_for(
                            sb.store, {}, dict(request.path_params)
                        ),
                    )
                    result = action(ctx, data)
                    sb.store.dirty = True
            except StripeError as exc:
                return _error(exc)
            return JSONResponse(result)

        return endpoint

    # simulations

    def pay_session(ctx: Ctx, data: Obj) -> Obj:
        session = checkout.get_session(ctx, ctx.path["id"])
        return checkout.pay_session(ctx, session, str(data.get("payment_method") or "pm_card_visa"))

    def settle_session(ctx: Ctx, data: Obj) -> Obj:
        session = checkout.get_session(ctx, ctx.path["id"])
        return checkout.settle_session(ctx, session, data.get("outcome"))

    def expire_session(ctx: Ctx, data: Obj) -> Obj:
        return checkout.expire_session(ctx, checkout.get_session(ctx, ctx.path["id"]))

    def complete_onboarding(ctx: Ctx, data: Obj) -> Obj:
        # `{"capability_status": "pending"}`: details submitted, Stripe still verifying.
        status = data.get("capability_status") or "active"
        if status not in ("active", "pending"):
            raise bad_param("capability_status must be active or pending", "capability_status")
        account = accounts.get_account(ctx, ctx.path["id"])
        return accounts.complete_onboarding(ctx, account, str(status))

    def update_account(ctx: Ctx, data: Obj) -> Obj:
        return accounts.simulate_update(ctx, accounts.get_account(ctx, ctx.path["id"]), data)

    def fail_payment(ctx: Ctx, data: Obj) -> Obj:
        sub = get_subscription(ctx, ctx.path["id"])
        if sub["status"] in billing.ENDED:
            raise invalid(f"The subscription has ended ({sub['status']}).")
        token = str(data.get("payment_method") or "pm_card_chargeDeclined")
        card = CARDS.get(token)
        decline = (
            card.decline
            if card and card.decline
            else AUTHENTICATION_REQUIRED
            if card and card.authentication
            else Decline("card_declined", "generic_decline", "Your card was declined.")
        )
        pending = billing.billing_invoices(ctx, sub)
        if pending:
            inv = pending[-1]
        else:
            # Nothing open: bill the current period now, as a renewal would.
            item = sub["items"]["data"][0]
            inv = billing.invoice_subscription(
                ctx,
                sub,
                billing_reason="subscription_cycle",
                period_start=item["current_period_start"],
                period_end=item["current_period_start"],
            )
        if inv["status"] == "open":
            billing.attempt_payment(
                ctx, inv, billing.payment_method_for(ctx, sub), decline, forced=True
            )
        if sub["status"] in ("active", "trialing"):
            billing.set_status(ctx, sub, "past_due")
        return {"subscription": sub, "invoice": inv}

    def pay_subscription(ctx: Ctx, data: Obj) -> Obj:
        sub = get_subscription(ctx, ctx.path["id"])
        pending = billing.open_invoices(ctx, sub)
        if not pending:
            raise invalid("This subscription has no open invoice to pay.")
        token = data.get("payment_method")
        if token:
            pm = payment_methods.resolve(ctx, str(token), "payment_method")
            payment_methods.attach(ctx, pm, sub["customer"])
            decline = billing.pay_open_invoices(ctx, sub, pm["id"])
        else:
            # Like the customer paying on the hosted invoice page: it succeeds.
            for inv in pending:
                billing.attempt_payment(ctx, inv, None, None, forced=True)
            billing.settle_status(ctx, sub)
            decline = None
        if decline is not None:
            raise billing.payment_error(decline)
        return {"subscription": sub, "invoices": [i["id"] for i in pending]}

    def authenticate_invoice(ctx: Ctx, data: Obj) -> Obj:
        """The customer completes (`succeed`) or fails 3-D Secure, as on the hosted page."""
        outcome = data.get("outcome", "succeed")
        if outcome not in ("succeed", "fail"):
            raise bad_param("outcome must be succeed or fail", "outcome")
        inv = invoices.get_invoice(ctx, ctx.path["id"])
        if not billing.awaiting_authentication(ctx, inv):
            raise invalid(
                f"This invoice ({inv['status']}) has no payment waiting for authentication."
            )
        decline = billing.authenticate(ctx, inv, succeed=outcome == "succeed")
        sub_id = billing.subscription_of(inv)
        return {
            "invoice": inv,
            "subscription": ctx.store.get(sub_id, "subscription") if sub_id else None,
            "decline_code": None if decline is None else (decline.decline_code or decline.code),
        }

    def advance_clock(ctx: Ctx, data: Obj) -> Obj:
        now = sb.clock.now()
        if "to" in data:
            target = int(data["to"])
        else:
            try:
                target = now + int(data.get("seconds", 0))
            except (TypeError, ValueError):
                raise bad_param("seconds must be an integer", "seconds") from None
        if target < now:
            raise bad_param("The sandbox clock only moves forward.", "seconds")
        steps = run_due(sb, target, ctx.base_url)
        return {"now": sb.clock.now(), "offset": sb.clock.offset, "steps": steps}

    # read-only and non-locked endpoints

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def clock(request: Request) -> Response:
        return JSONResponse({"now": sb.clock.now(), "offset": sb.clock.offset})

    async def add_fault(request: Request) -> Response:
        try:
            fault = sb.faults.add(await _json(request))
        except StripeError as exc:
            return _error(exc)
        return JSONResponse(fault.describe())

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"data": [f.describe() for f in sb.faults.rules]})

    async def clear_faults(request: Request) -> Response:
        sb.faults.clear()
        return JSONResponse({"cleared": True})

    async def delete_fault(request: Request) -> Response:
        if not sb.faults.remove(request.path_params["id"]):
            return _error(no_such("fault", request.path_params["id"]))
        return JSONResponse({"id": request.path_params["id"], "deleted": True})

    async def stats(request: Request) -> Response:
        store = sb.store
        kinds = set(store.by_type) | set(store.deleted_counts)
        objects = {
            kind: {"live": store.count(kind), "deleted": store.deleted_counts.get(kind, 0)}
            for kind in sorted(kinds)
        }
        events: dict[str, int] = {}
        for event in store.events.values():
            events[event.type] = events.get(event.type, 0) + 1
        return JSONResponse(
            {
                "objects": objects,
                "events": events,
                "requests": sb.stats.summary(),
                "requests_in_flight": sb.stats.in_flight,
                "idempotent_replays": sb.idempotency.replays,
                "webhook_deliveries": dict(sb.dispatcher.outcomes),
                "webhooks_held": len(sb.dispatcher.held_items),
                "rate_limited": dict(sb.rate_limits.limited),
            }
        )

    async def rate_limits(request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await _json(request)
                values = {k: _rate(data, k) for k in ("rate", "endpoint_rate") if k in data}
            except StripeError as exc:
                return _error(exc)
            sb.rate_limits.configure(**values)
        return JSONResponse(sb.rate_limits.describe())

    async def requests_log(request: Request) -> Response:
        return JSONResponse({"data": list(sb.stats.log)})

    async def list_events(request: Request) -> Response:
        wanted = request.query_params.get("type")
        data = [
            sb.bus.render(e.id)
            for e in sb.store.events.values()
            if wanted is None or e.type == wanted
        ]
        return JSONResponse({"data": data})

    async def reset(request: Request) -> Response:
        try:
            data = await _json(request)
        except StripeError as exc:
            return _error(exc)
        async with sb.lock:
            sb.reset(
                keep_endpoints=not data.get("drop_endpoints", False),
                keep_clock=bool(data.get("keep_clock", False)),
            )
        return JSONResponse({"reset": True})

    async def unknown(request: Request) -> Response:
        return _error(
            StripeError(
                404,
                "invalid_request_error",
                f"Unrecognized sandbox control URL ({request.method}: {request.url.path}).",
            )
        )

    # webhooks

    async def add_endpoint(request: Request) -> Response:
        try:
            data = await _json(request)
            if not data.get("url") or not data.get("secret"):
                raise bad_param("url and secret are required", "url")
            events = data.get("enabled_events")
            if events is not None and (
                not isinstance(events, list) or not all(isinstance(e, str) for e in events)
            ):
                raise bad_param("enabled_events must be a list of event types", "enabled_events")
        except StripeError as exc:
            return _error(exc)
        endpoint = sb.dispatcher.add_endpoint(
            str(data["url"]),
            str(data["secret"]),
            connect=bool(data.get("connect", False)),
            enabled_events=data.get("enabled_events"),
        )
        return JSONResponse(endpoint.describe())

    async def list_endpoints(request: Request) -> Response:
        return JSONResponse({"data": [e.describe() for e in sb.dispatcher.endpoints]})

    async def remove_endpoint(request: Request) -> Response:
        try:
            data = await _json(request)
        except StripeError as exc:
            return _error(exc)
        connect = data.get("connect")
        removed = sb.dispatcher.remove_endpoint(
            str(data.get("url", "")), None if connect is None else bool(connect)
        )
        return JSONResponse({"removed": removed})

    async def deliveries(request: Request) -> Response:
        return JSONResponse({"data": list(sb.dispatcher.log)})

    async def hold(request: Request) -> Response:
        sb.dispatcher.hold()
        return JSONResponse({"held": True})

    async def release(request: Request) -> Response:
        try:
            data = await _json(request)
            order = str(data.get("order", "created"))
            if order not in ("created", "shuffled"):
                raise bad_param("order must be created or shuffled", "order")
            duplicates = int(data.get("duplicates", 1))
            keep_holding = data.get("keep_holding", False)
            if not isinstance(keep_holding, bool):
                raise bad_param("keep_holding must be a boolean", "keep_holding")
        except (StripeError, ValueError) as exc:
            if isinstance(exc, StripeError):
                return _error(exc)
            return _error(bad_param("duplicates must be an integer", "duplicates"))
        released = sb.dispatcher.release(order, duplicates, keep_holding=keep_holding)
        return JSONResponse({"released": released})

    async def resend(request: Request) -> Response:
        try:
            data = await _json(request)
        except StripeError as exc:
            return _error(exc)
        ids = data.get("events") or list(sb.store.events)
        queued = 0
        for event_id in ids:
            event = sb.store.events.get(str(event_id))
            if event is None:
                return _error(no_such("event", str(event_id), "events"))
            queued += sb.dispatcher.resend(
                event.id, event.type, event.payload, event.account is not None
            )
        return JSONResponse({"queued": queued})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/clock", clock, methods=["GET"]),
        Route("/clock/advance", locked(advance_clock), methods=["POST"]),
        Route("/checkout/sessions/{id}/pay", locked(pay_session), methods=["POST"]),
        Route("/checkout/sessions/{id}/settle", locked(settle_session), methods=["POST"]),
        Route("/checkout/sessions/{id}/expire", locked(expire_session), methods=["POST"]),
        Route("/accounts/{id}/complete_onboarding", locked(complete_onboarding), methods=["POST"]),
        Route("/accounts/{id}/update", locked(update_account), methods=["POST"]),
        Route("/subscriptions/{id}/fail_payment", locked(fail_payment), methods=["POST"]),
        Route("/subscriptions/{id}/pay", locked(pay_subscription), methods=["POST"]),
        Route("/invoices/{id}/authenticate", locked(authenticate_invoice), methods=["POST"]),
        Route("/faults", add_fault, methods=["POST"]),
        Route("/faults", list_faults, methods=["GET"]),
        Route("/faults", clear_faults, methods=["DELETE"]),
        Route("/faults/{id}", delete_fault, methods=["DELETE"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/rate_limits", rate_limits, methods=["GET", "POST"]),
        Route("/requests", requests_log, methods=["GET"]),
        Route("/events", list_events, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/webhooks/endpoints", add_endpoint, methods=["POST"]),
        Route("/webhooks/endpoints", list_endpoints, methods=["GET"]),
        Route("/webhooks/endpoints", remove_endpoint, methods=["DELETE"]),
        Route("/webhooks/deliveries", deliveries, methods=["GET"]),
        Route("/webhooks/hold", hold, methods=["POST"]),
        Route("/webhooks/release", release, methods=["POST"]),
        Route("/webhooks/resend", resend, methods=["POST"]),
        Route("/{rest:path}", unknown, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
    ]
