"""What `onramp stripe check` records: its rows, what it made, and its failures."""

from __future__ import annotations

from dataclasses import dataclass, field


class CheckFailed(Exception):
    """A row's expectation was not met (the message says what Stripe answered)."""


@dataclass
class Row:
    name: str
    ok: bool
    detail: str


@dataclass
class Made:
    """What the check created, for the table's dependencies and the clean-up."""

    test_clock: str | None = None
    customers: list[str] = field(default_factory=list)
    account: str | None = None
    product: str | None = None
    prices: list[str] = field(default_factory=list)
    card: str | None = None
    subscription: str | None = None


def describe(error: BaseException) -> str:
    """An error on one line, short enough for the table."""
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:300]
