"""A way forward offered on a page (kept apart so `api.errors` can carry one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Action:
    """A link, or a form posting `fields` to `url` (e.g. "Email me a new link")."""

    label: str
    url: str
    method: Literal["get", "post"] = "get"
    fields: tuple[tuple[str, str], ...] = ()
    primary: bool = True
