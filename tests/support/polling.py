"""Polling until a condition holds, for tests that watch an asynchronous outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    *,
    seconds: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until `accept` says yes; fail with the last value at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s; last value: {value!r}")
        await asyncio.sleep(interval)


async def until(
    condition: Callable[[], bool],
    *,
    what: str,
    seconds: float = 30.0,
    interval: float = 0.02,
) -> None:
    """Wait until the synchronous `condition` holds (state of this process: threads,
    tasks, pools); fail naming `what` at the deadline."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(interval)
