"""Starlette endpoints from route tables: each handler takes the sandbox and the request,
and `bind` turns a table of them into routes for one sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.domain.context import Ctx
from sandbox.domain.resources import test_clocks
from sandbox.domain.runtime import Sandbox

Handler = Callable[[Sandbox, Request], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
Table = Iterable[tuple[str, list[str], Handler]]
"""Path template, methods, handler; in match order."""


def _bound(sb: Sandbox, handler: Handler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await handler(sb, request)

    return endpoint


def bind(sb: Sandbox, table: Table) -> list[Route]:
    """The table's routes, each handler bound to `sb`."""
    return [Route(path, _bound(sb, handler), methods=methods) for path, methods, handler in table]


def request_ctx(sb: Sandbox, request: Request) -> Ctx:
    """The context for work a control call or a hosted page does (on the object's clock)."""
    path = dict(request.path_params)
    return Ctx(
        sb,
        path=path,
        base_url=str(request.base_url).rstrip("/"),
        frozen_time=test_clocks.frozen_time_for(sb.store, {}, path),
    )
