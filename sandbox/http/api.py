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
from dataclasses import dataclass
from typing import Any
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
from sandbox.domain.resources import checkout, test_clocks
from sandbox.domain.runtime import Sandbox
from sandbox.domain.validation import UndeclaredRoute, check_request
from sandbox.http.forms import decode_pairs
from sandbox.http.routing import Route
from sandbox.http.v1_routes import ROUTER

log = logging.getLogger("sandbox.api")

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


Answer = tuple[int, bytes, dict[str, str]]
"""Status, JSON body and extra headers of an answer not yet logged."""


@dataclass
class _Call:
    """One `/v1/` request on its way through the pipeline, and what its log line records."""

    sb: Sandbox
    request_id: str
    method: str
    path: str
    idem_key: str | None
    headers: dict[str, str]
    matched: tuple[Route, dict[str, str]] | None
    api_key: str = ""
    fault: Fault | None = None
    # The fault fails inside the endpoint (saved under the key), after its work if applied.
    inside: bool = False
    applied: bool = False
    object_id: str | None = None
    replayed: bool = False
    claimed: bool = False

    @classmethod
    def of(cls, sb: Sandbox, request: Request) -> _Call:
        request_id = new_id("req")
        method = request.method
        path = request.url.path
        idem_key = request.headers.get("idempotency-key") if method == "POST" else None
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        matched = ROUTER.match(method, path)
        return cls(sb, request_id, method, path, idem_key, headers, matched)

    @property
    def template(self) -> str:
        return self.matched[0].template if self.matched else "(unrecognized)"

    def answer(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> Response:
        self.sb.stats.record(
            method=self.method,
            path=self.path,
            template=self.template,
            status=status,
            request_id=self.request_id,
            idempotency_key=self.idem_key,
            object_id=self.object_id,
            replayed=self.replayed,
            sandbox_time=self.sb.clock.now(),
            fault=self.fault.id if self.fault else None,
        )
        return Response(
            body,
            status,
            headers={**self.headers, **extra} if extra else self.headers,
            media_type="application/json",
        )

    def error(self, exc: StripeError) -> Response:
        return self.answer(*self.failed(exc))

    def failed(self, exc: StripeError) -> Answer:
        return exc.status, json.dumps(exc.body(self.request_id)).encode(), exc.headers

    def not_reached(self) -> None:
        """Answered before the endpoint ran: the fault did not happen."""
        if self.inside and self.fault is not None:
            self.fault.undo()
            self.fault, self.inside = None, False


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
        call = _Call.of(self.sb, request)
        refused = await self._admit(call, request)
        if refused is not None:
            return refused
        decoded = await self._decode(call, request)
        if isinstance(decoded, Response):
            return decoded
        params, pairs = decoded
        replay = self._claim(call, pairs)
        if replay is not None:
            return replay
        return call.answer(*await self._run(call, request, params))

    async def _admit(self, call: _Call, request: Request) -> Response | None:
        """Authentication, API version, rate limits and faults that answer at once."""
        try:
            call.api_key = api_key_of(request)
            check_version(request.headers.get("stripe-version"))
        except StripeError as exc:
            return call.error(exc)
        limited = self.sb.rate_limits.check(call.api_key, call.method, call.template)
        if limited is not None:
            return call.error(limited)
        if self.sb.faults.rules:
            call.fault = self.sb.faults.decide(call.method, call.path)
        fault = call.fault
        # A fault that fails inside the endpoint runs after routing and idempotency;
        # any other answers now, before the request is processed.
        call.inside, call.applied = fault.inside_endpoint() if fault is not None else (False, False)
        if fault is not None and fault.status is not None and not call.inside:
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000)
            injected = fault.error()
            assert injected is not None
            return call.error(injected)
        return None

    async def _decode(
        self, call: _Call, request: Request
    ) -> Response | tuple[dict[str, Any], list[tuple[str, str]]]:
        """Routing, then the parameters decoded and checked against stripe-python's types."""
        if call.matched is None:
            return call.error(
                StripeError(
                    404,
                    "invalid_request_error",
                    f"Unrecognized request URL ({call.method}: {call.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            )
        route = call.matched[0]
        if call.method == "POST":
            raw = (await request.body()).decode("utf-8", "replace")
        else:
            raw = request.url.query
        pairs = parse_qsl(raw, keep_blank_values=True)
        try:
            params = decode_pairs(pairs)
            check_request(call.method, route.template, params)
        except StripeError as exc:
            call.not_reached()
            return call.error(exc)
        except UndeclaredRoute:
            log.exception("no parameter types for %s %s", call.method, route.template)
            return call.error(api_error("The sandbox declares no parameter types for this route."))
        return params, pairs

    def _claim(self, call: _Call, pairs: list[tuple[str, str]]) -> Response | None:
        """Take the idempotency key, or answer with what it saved (or why it cannot)."""
        if not call.idem_key:
            return None
        sb = self.sb
        try:
            entry = sb.idempotency.begin(
                call.api_key,
                call.idem_key,
                fingerprint(call.method, call.path, pairs),
                sb.clock.now(),
                call.request_id,
            )
        except StripeError as exc:
            call.not_reached()
            return call.error(exc)
        if entry is not None:
            call.not_reached()
            call.replayed = True
            call.object_id = entry.object_id
            assert entry.status is not None
            return call.answer(
                entry.status,
                entry.body,
                {
                    **entry.headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": entry.request_id,
                },
            )
        call.claimed = True
        return None

    async def _run(self, call: _Call, request: Request, params: dict[str, Any]) -> Answer:
        """The endpoint itself (or the fault failing inside it); its result saved under the key."""
        sb = self.sb
        assert call.matched is not None
        route, path_params = call.matched
        ctx = Ctx(
            sb,
            params=params,
            path=path_params,
            request_id=call.request_id,
            idempotency_key=call.idem_key,
            base_url=str(request.base_url).rstrip("/"),
            stripe_account=request.headers.get("stripe-account"),
            frozen_time=test_clocks.frozen_time_for(sb.store, params, path_params),
        )
        saved = False
        try:
            if call.fault is not None and call.fault.delay_ms:
                await asyncio.sleep(call.fault.delay_ms / 1000)
            status, body, extra = await self._execute(call, route, ctx)
            if call.inside and call.fault is not None:
                status, body, extra = self._inject(call, call.fault)
            call.object_id = ctx.created_id
            if call.claimed and call.idem_key:
                sb.idempotency.finish(
                    call.api_key, call.idem_key, status, body, call.object_id, extra
                )
                saved = True
        finally:
            if call.claimed and not saved and call.idem_key:
                sb.idempotency.abandon(call.api_key, call.idem_key)
        return status, body, extra

    async def _execute(self, call: _Call, route: Route, ctx: Ctx) -> Answer:
        sb = self.sb
        before = (len(sb.store.objects), len(sb.store.events))
        try:
            if call.inside and not call.applied:
                raise api_error()  # replaced by the fault's own 500
            async with sb.lock:
                obj = route.handler(ctx)
                paths = ctx.params.get("expand") or []
                result = expand(obj, paths, self._resolve, self._virtual) if paths else obj
                body = json.dumps(result).encode()
                if call.method != "GET":
                    sb.store.dirty = True
            return 200, body, {}
        except StripeError as exc:
            answer = call.failed(exc)
            unchanged = before == (len(sb.store.objects), len(sb.store.events))
            if exc.validation and unchanged:
                call.not_reached()
                if call.claimed:
                    # Stripe saves a result only once the endpoint began executing.
                    sb.idempotency.abandon(call.api_key, call.idem_key or "")
                    call.claimed = False
            return answer
        except Exception:
            log.exception("unexpected error in %s %s", call.method, call.path)
            failure = api_error()
            return failure.status, json.dumps(failure.body(call.request_id)).encode(), {}

    @staticmethod
    def _inject(call: _Call, fault: Fault) -> Answer:
        fault.saved_fired += 1
        fault.applied_fired += call.applied
        injected = fault.error(inside_endpoint=bool(call.idem_key))
        assert injected is not None
        return call.failed(injected)
