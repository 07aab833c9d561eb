"""Stripe list objects: newest first, `limit`, `starting_after`, `ending_before`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sandbox.domain.jsontypes import Obj


def created_matches(created: int, condition: dict[str, int] | None) -> bool:
    """`created` filters: `{"eq": t}` or any of gt/gte/lt/lte."""
    if not condition:
        return True
    checks: dict[str, Callable[[int, int], bool]] = {
        "eq": lambda a, b: a == b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    return all(checks[op](created, bound) for op, bound in condition.items() if bound is not None)


def paginate(items: Iterable[Obj], params: dict[str, Any], url: str) -> Obj:
    """A list object from objects given newest first (already filtered)."""
    limit: int = params.get("limit") or 10
    after = params.get("starting_after")
    before = params.get("ending_before")
    data: list[Obj] = []
    has_more = False
    if before:
        newer: list[Obj] = []
        for obj in items:
            if obj["id"] == before:
                break
            newer.append(obj)
        else:
            newer = []
        data = newer[-limit:]
        has_more = len(newer) > limit
    else:
        skipping = bool(after)
        for obj in items:
            if skipping:
                skipping = obj["id"] != after
                continue
            if len(data) == limit:
                has_more = True
                break
            data.append(obj)
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def list_object(data: list[Obj], url: str) -> Obj:
    """A complete embedded list (e.g. `items`, `lines`)."""
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}
