"""The `/v1/...` request pipeline, in Stripe's order: authentication and API version,
the rate limiter, injected faults (before idempotency, like the rate limiter, unless a
fault fails inside the endpoint), routing, parameter validation against stripe-python's
types (`sandbox.domain.validation`; never saved under an idempotency key), idempotency, the
handler, expansion; every answer gets a `Request-Id` and lands in the request log."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from sandbox import API_VERSION
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, api_error
from sandbox.domain.expand import expand
from sandbox.domain.faults import Fault
from sandbox.domain.idempotency import fingerprint
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources import (
    accounts,
    checkout,
    customers,
    events,
    invoices,
    payment_methods,
    prices,
    products,
    subscriptions,
    test_clocks,
)
from sandbox.domain.runtime import Sandbox
from sandbox.domain.validation import UndeclaredRoute, check_request
from sandbox.http.forms import decode_pairs
from sandbox.http.routing import Router

log = logging.getLogger("sandbox.api")

ROUTER = Router(
    [
        *customers.ROUTES,
        *payment_methods.ROUTES,
        *products.ROUTES,
        *prices.ROUTES,
        *checkout.ROUTES,
        *subscriptions.ROUTES,
        *invoices.ROUTES,
        *accounts.ROUTES,
        *events.ROUTES,
        *test_clocks.ROUTES,
    ]
)

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


def api_key_of(request: Request) -> str:
    """The secret key from `Authorization: Bearer` (or Basic, as curl -u sends it)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    key = ""
    if scheme.lower() == "bearer":
        key = value.strip()
    elif scheme.lower() == "basic":
        try:
            key = base64.b64decode(value).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            key = ""
    if not key:
        raise StripeError(401, "invalid_request_error", NO_KEY)
    if not key.startswith(("sk_test_", "rk_test_")) or len(key) <= len("sk_test_"):
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else key
        raise StripeError(
            401,
            "invalid_request_error",
            f"Invalid API Key provided: {shown}",
            code="api_key_invalid" if key.startswith("sk_live_") else None,
        )
    return key


def check_version(requested: str | None) -> None:
    """Refuse any `Stripe-Version` but the one whose shapes the sandbox serves.

    Stricter than Stripe, which serves every released version it is asked for: the
    sandbox knows only one version's parameters and objects, so answering another would
    pass off endive's shapes as that version's. No header means the account's default,
    which for the sandbox is its one version.
    """
    if requested is not None and requested != API_VERSION:
        raise StripeError(
            400,
            "invalid_request_error",
            f"The sandbox serves only Stripe API version {API_VERSION}; this request asked "
            f"for {requested}.",
            validation=True,
        )


class Api:
    """The ASGI endpoint for everything under `/v1/`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sb = sandbox

    def _resolve(self, object_id: str) -> Obj | None:
        return self.sb.store.get(object_id) or self.sb.store.deleted.get(object_id)

    def _virtual(self, node: Obj, key: str) -> Obj | None:
        if node.get("object") == "checkout.session" and key == "line_items":
            session = self.sb.store.get(node["id"], "checkout.session")
            if session is not None:
                return checkout.line_items_list(Ctx(self.sb), session)
        return None

    async def handle(self, request: Request) -> Response:
        self.sb.stats.in_flight += 1
        try:
            return await self._handle(request)
        finally:
            self.sb.stats.in_flight -= 1

    async def _handle(self, request: Request) -> Response:
        sb = self.sb
        request_id = new_id("req")
        method = request.method
        path = request.url.path
        idem_key = request.headers.get("idempotency-key") if method == "POST" else None
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        matched = ROUTER.match(method, path)
        template = matched[0].template if matched else "(unrecognized)"
        fault: Fault | None = None
        object_id: str | None = None
        replayed = False

        def answer(status: int, body: bytes, extra: dict[str, str] | None = None) -> Response:
            sb.stats.record(
                method=method,
                path=path,
                template=template,
                status=status,
                request_id=request_id,
                idempotency_key=idem_key,
                object_id=object_id,
                replayed=replayed,
                sandbox_time=sb.clock.now(),
                fault=fault.id if fault else None,
            )
            return Response(
                body,
                status,
                headers={**headers, **extra} if extra else headers,
                media_type="application/json",
            )

        def error(exc: StripeError) -> Response:
            return answer(exc.status, json.dumps(exc.body(request_id)).encode(), exc.headers)

        try:
            api_key = api_key_of(request)
            check_version(request.headers.get("stripe-version"))
        except StripeError as exc:
            return error(exc)
        limited = sb.rate_limits.check(api_key, method, template)
        if limited is not None:
            return error(limited)

        if sb.faults.rules:
            fault = sb.faults.decide(method, path)
        # A fault that fails inside the endpoint runs after routing and idempotency;
        # any other answers now, before the request is processed.
        inside, applied = fault.inside_endpoint() if fault is not None else (False, False)
        if fault is not None and fault.status is not None and not inside:
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            injected = fault.error()
            assert injected is not None
            return error(injected)

        def not_reached() -> None:
            # Answered before the endpoint ran: the fault did not happen.
            nonlocal fault, inside
            if inside and fault is not None:
                fault.undo()
                fault, inside = None, False

        if matched is None:
            return error(
                StripeError(
                    404,
                    "invalid_request_error",
                    f"Unrecognized request URL ({method}: {path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            )
        route, path_params = matched
        if method == "POST":
            raw = (await request.body()).decode("utf-8", "replace")
        else:
            raw = request.url.query
        pairs = parse_qsl(raw, keep_blank_values=True)
        try:
            params = decode_pairs(pairs)
            check_request(method, route.template, params)
        except StripeError as exc:
            not_reached()
            return error(exc)
        except UndeclaredRoute:
            log.exception("no parameter types for %s %s", method, route.template)
            return error(api_error("The sandbox declares no parameter types for this route."))

        claimed = False
        if idem_key:
            try:
                entry = sb.idempotency.begin(
                    api_key, idem_key, fingerprint(method, path, pairs), sb.clock.now(), request_id
                )
            except StripeError as exc:
                not_reached()
                return error(exc)
            if entry is not None:
                not_reached()
                replayed = True
                object_id = entry.object_id
                assert entry.status is not None
                return answer(
                    entry.status,
                    entry.body,
                    {
                        **entry.headers,
                        "Idempotent-Replayed": "true",
                        "Original-Request": entry.request_id,
                    },
                )
            claimed = True

        ctx = Ctx(
            sb,
            params=params,
            path=path_params,
            request_id=request_id,
            idempotency_key=idem_key,
            base_url=str(request.base_url).rstrip("/"),
            stripe_account=request.headers.get("stripe-account"),
            frozen_time=test_clocks.frozen_time_for(sb.store, params, path_params),
        )
        status = 200
        extra: dict[str, str] = {}
        saved = False
        before = (len(sb.store.objects), len(sb.store.events))
        try:
            if fault is not None and fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            try:
                if inside and not applied:
                    raise api_error()  # replaced by the fault's own 500 below
                async with sb.lock:
                    obj = route.handler(ctx)
                    paths = params.get("expand") or []
                    result = expand(obj, paths, self._resolve, self._virtual) if paths else obj
                    body = json.dumps(result).encode()
                    if method != "GET":
                        sb.store.dirty = True
            except StripeError as exc:
                status, body, extra = (
                    exc.status,
                    json.dumps(exc.body(request_id)).encode(),
                    exc.headers,
                )
                unchanged = before == (len(sb.store.objects), len(sb.store.events))
                if exc.validation and unchanged:
                    not_reached()
                    if claimed:
                        # Stripe saves a result only once the endpoint began executing.
                        sb.idempotency.abandon(api_key, idem_key or "")
                        claimed = False
            except Exception:
                log.exception("unexpected error in %s %s", method, path)
                failure = api_error()
                status, body = failure.status, json.dumps(failure.body(request_id)).encode()
            if inside and fault is not None:
                fault.saved_fired += 1
                fault.applied_fired += applied
                injected = fault.error(inside_endpoint=bool(idem_key))
                assert injected is not None
                status, body, extra = (
                    injected.status,
                    json.dumps(injected.body(request_id)).encode(),
                    injected.headers,
                )
            object_id = ctx.created_id
            if claimed and idem_key:
                sb.idempotency.finish(api_key, idem_key, status, body, object_id, extra)
                saved = True
        finally:
            if claimed and not saved and idem_key:
                sb.idempotency.abandon(api_key, idem_key)
        return answer(status, body, extra)
