"""The `/_sandbox/` control API (JSON in and out): simulate what customers, Stripe and
time would do, inject faults, steer webhooks, and read counters and the request log."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.domain import planting
from sandbox.domain import simulations as sim
from sandbox.domain.errors import StripeError, bad_param, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.runtime import Sandbox
from sandbox.domain.simulations import Simulation
from sandbox.http.endpoints import Handler, bind, request_ctx


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


def _locked(simulation: Simulation) -> Handler:
    """Run a state-changing simulation under the sandbox lock, answering JSON or an error."""

    async def handler(sb: Sandbox, request: Request) -> Response:
        try:
            data = await _json(request)
            async with sb.lock:
                result = simulation(request_ctx(sb, request), data)
                sb.store.dirty = True
        except StripeError as exc:
            return _error(exc)
        return JSONResponse(result)

    return handler


async def health(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"ok": True})


async def clock(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"now": sb.clock.now(), "offset": sb.clock.offset})


async def add_fault(sb: Sandbox, request: Request) -> Response:
    try:
        fault = sb.faults.add(await _json(request))
    except StripeError as exc:
        return _error(exc)
    return JSONResponse(fault.describe())


async def list_faults(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"data": [f.describe() for f in sb.faults.rules]})


async def clear_faults(sb: Sandbox, request: Request) -> Response:
    sb.faults.clear()
    return JSONResponse({"cleared": True})


async def delete_fault(sb: Sandbox, request: Request) -> Response:
    if not sb.faults.remove(request.path_params["id"]):
        return _error(no_such("fault", request.path_params["id"]))
    return JSONResponse({"id": request.path_params["id"], "deleted": True})


async def stats(sb: Sandbox, request: Request) -> Response:
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


async def rate_limits(sb: Sandbox, request: Request) -> Response:
    if request.method == "POST":
        try:
            data = await _json(request)
            values = {k: _rate(data, k) for k in ("rate", "endpoint_rate") if k in data}
        except StripeError as exc:
            return _error(exc)
        sb.rate_limits.configure(**values)
    return JSONResponse(sb.rate_limits.describe())


async def requests_log(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"data": list(sb.stats.log)})


async def list_events(sb: Sandbox, request: Request) -> Response:
    wanted = request.query_params.get("type")
    data = [
        sb.bus.render(e.id) for e in sb.store.events.values() if wanted is None or e.type == wanted
    ]
    return JSONResponse({"data": data})


async def reset(sb: Sandbox, request: Request) -> Response:
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


async def unknown(sb: Sandbox, request: Request) -> Response:
    return _error(
        StripeError(
            404,
            "invalid_request_error",
            f"Unrecognized sandbox control URL ({request.method}: {request.url.path}).",
        )
    )


async def add_endpoint(sb: Sandbox, request: Request) -> Response:
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


async def list_endpoints(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"data": [e.describe() for e in sb.dispatcher.endpoints]})


async def remove_endpoint(sb: Sandbox, request: Request) -> Response:
    try:
        data = await _json(request)
    except StripeError as exc:
        return _error(exc)
    connect = data.get("connect")
    removed = sb.dispatcher.remove_endpoint(
        str(data.get("url", "")), None if connect is None else bool(connect)
    )
    return JSONResponse({"removed": removed})


async def deliveries(sb: Sandbox, request: Request) -> Response:
    return JSONResponse({"data": list(sb.dispatcher.log)})


async def hold(sb: Sandbox, request: Request) -> Response:
    sb.dispatcher.hold()
    return JSONResponse({"held": True})


async def release(sb: Sandbox, request: Request) -> Response:
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


async def resend(sb: Sandbox, request: Request) -> Response:
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


# In match order: the catch-all last.
CONTROL_ROUTES: list[tuple[str, list[str], Handler]] = [
    ("/health", ["GET"], health),
    ("/clock", ["GET"], clock),
    ("/clock/advance", ["POST"], _locked(sim.advance_clock)),
    ("/checkout/sessions/{id}/pay", ["POST"], _locked(sim.pay_session)),
    ("/checkout/sessions/{id}/settle", ["POST"], _locked(sim.settle_session)),
    ("/checkout/sessions/{id}/expire", ["POST"], _locked(sim.expire_session)),
    ("/accounts/{id}/complete_onboarding", ["POST"], _locked(sim.complete_onboarding)),
    ("/accounts/{id}/update", ["POST"], _locked(sim.update_account)),
    ("/subscriptions/{id}/fail_payment", ["POST"], _locked(sim.fail_payment)),
    ("/subscriptions/{id}/pay", ["POST"], _locked(sim.pay_subscription)),
    ("/invoices/{id}/authenticate", ["POST"], _locked(sim.authenticate_invoice)),
    ("/plant/customers", ["POST"], _locked(planting.plant_customers)),
    ("/plant/accounts", ["POST"], _locked(planting.plant_accounts)),
    ("/plant/subscriptions", ["POST"], _locked(planting.plant_subscriptions)),
    ("/plant/subscriptions/{id}", ["POST"], _locked(planting.change_subscription)),
    ("/plant/objects/{id}/delete", ["POST"], _locked(planting.delete_object)),
    ("/faults", ["POST"], add_fault),
    ("/faults", ["GET"], list_faults),
    ("/faults", ["DELETE"], clear_faults),
    ("/faults/{id}", ["DELETE"], delete_fault),
    ("/stats", ["GET"], stats),
    ("/rate_limits", ["GET", "POST"], rate_limits),
    ("/requests", ["GET"], requests_log),
    ("/events", ["GET"], list_events),
    ("/reset", ["POST"], reset),
    ("/webhooks/endpoints", ["POST"], add_endpoint),
    ("/webhooks/endpoints", ["GET"], list_endpoints),
    ("/webhooks/endpoints", ["DELETE"], remove_endpoint),
    ("/webhooks/deliveries", ["GET"], deliveries),
    ("/webhooks/hold", ["POST"], hold),
    ("/webhooks/release", ["POST"], release),
    ("/webhooks/resend", ["POST"], resend),
    ("/{rest:path}", ["GET", "POST", "DELETE", "PUT", "PATCH"], unknown),
]


def routes(sb: Sandbox) -> list[Route]:
    """The control routes, mounted at `/_sandbox`."""
    return bind(sb, CONTROL_ROUTES)
