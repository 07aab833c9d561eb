"""Decoding Stripe's form encoding: `a[b][0][c]=x`, `expand[]=y`, `metadata[k]=v`.

stripe-python sends lists with explicit indexes (`expand[0]`); curl users send `expand[]`.
Both become Python lists; objects become dicts; every leaf stays a string (validation
converts types per endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from sandbox.domain.errors import bad_param

_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    """`a[b][0]` -> `["a", "b", "0"]`; `a[]` -> `["a", ""]` (append)."""
    start = key.find("[")
    if start <= 0 or not key.endswith("]"):
        return [key]
    head, rest = key[:start], key[start:]
    parts = _SEGMENT.findall(rest)
    if "".join(f"[{p}]" for p in parts) != rest:
        return [key]
    return [head, *parts]


def _param_name(tokens: list[str]) -> str:
    return tokens[0] + "".join(f"[{t}]" for t in tokens[1:])


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested params from decoded `(key, value)` pairs."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        tokens = split_key(key)
        node: dict[str, Any] = root
        for depth, token in enumerate(tokens):
            name = str(len(node)) if token == "" else token
            if depth == len(tokens) - 1:
                if isinstance(node.get(name), dict):
                    raise bad_param(f"Invalid hash: {_param_name(tokens)}", _param_name(tokens))
                node[name] = value
                break
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            elif not isinstance(child, dict):
                param = _param_name(tokens[: depth + 1])
                raise bad_param(f"Invalid hash: {param}", param)
            node = child
    _listify_children(root)
    return root


def _listify_children(node: dict[str, Any]) -> None:
    """Turn dicts keyed `0..n` into lists (never a metadata hash, whose keys are free)."""
    for key, value in node.items():
        if isinstance(value, dict):
            _listify_children(value)
            if value and key != "metadata" and all(k.isdigit() for k in value):
                node[key] = [value[k] for k in sorted(value, key=int)]


def decode_query(query: str) -> dict[str, Any]:
    """Params of a URL query string (GET and DELETE)."""
    return decode_pairs(parse_qsl(query, keep_blank_values=True))


def decode_body(body: bytes) -> dict[str, Any]:
    """Params of an `application/x-www-form-urlencoded` body."""
    if not body:
        return {}
    return decode_pairs(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
