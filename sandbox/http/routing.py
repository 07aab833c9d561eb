"""A tiny router for `/v1/...`: templates like `/v1/customers/{id}` to handlers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sandbox.domain.context import Ctx
from sandbox.domain.jsontypes import Obj

Handler = Callable[[Ctx], Obj]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler

    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}$")


class Router:
    """Static paths by dict lookup, templated ones by regex, in declaration order."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._static: dict[tuple[str, str], Route] = {}
        self._dynamic: list[tuple[Route, re.Pattern[str]]] = []
        for route in routes:
            if "{" in route.template:
                self._dynamic.append((route, route.pattern()))
            else:
                self._static[(route.method, route.template)] = route

    @property
    def routes(self) -> list[Route]:
        """Every route, static ones first."""
        return [*self._static.values(), *(route for route, _ in self._dynamic)]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        route = self._static.get((method, path))
        if route is not None:
            return route, {}
        for route, pattern in self._dynamic:
            if route.method == method:
                found = pattern.match(path)
                if found:
                    return route, found.groupdict()
        return None
