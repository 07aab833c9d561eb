"""`expand[]`: replace id strings by the objects they name, with dotted paths."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.domain.errors import bad_param
from sandbox.domain.jsontypes import Obj

Resolver = Callable[[str], Obj | None]
Virtual = Callable[[Obj, str], Obj | None]


def expand(obj: Obj, paths: list[str], resolve: Resolver, virtual: Virtual) -> Obj:
    """A copy of `obj` with each path expanded; the stored object is never changed."""
    if not paths:
        return obj
    result: Obj = json.loads(json.dumps(obj))
    for index, path in enumerate(paths):
        if len(path.split(".")) > 4:
            raise bad_param(
                f"You cannot expand more than 4 levels of a property. Property: {path}",
                f"expand[{index}]",
            )
        _expand(result, path.split("."), path, index, resolve, virtual)
    return result


def _expand(
    node: Any, parts: list[str], path: str, index: int, resolve: Resolver, virtual: Virtual
) -> None:
    if not parts or not isinstance(node, dict):
        return
    key, rest = parts[0], parts[1:]
    if key == "data" and node.get("object") == "list":
        for item in node.get("data", []):
            _expand(item, rest, path, index, resolve, virtual)
        return
    if key not in node:
        made = virtual(node, key)
        if made is None:
            raise bad_param(f"This property cannot be expanded ({path}).", f"expand[{index}]")
        node[key] = made
    value = node[key]
    if isinstance(value, str):
        found = resolve(value)
        if found is None:
            raise bad_param(f"This property cannot be expanded ({path}).", f"expand[{index}]")
        node[key] = value = json.loads(json.dumps(found))
    _expand(value, rest, path, index, resolve, virtual)
