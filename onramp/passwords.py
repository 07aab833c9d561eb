"""Set-password tokens and password hashing.

The token is derived from its id (`onramp.tokens`, purpose :data:`SET_PASSWORD`), so only
the id travels through workflows; the email activity derives the link and the API hashes
a presented token to find its row. Passwords are hashed with argon2id (argon2-cffi's
recommended parameters: 64 MiB, 3 passes, 4 lanes — about 150 ms of CPU, 125 ms of
wall time, on the 2-core bench machine) in a small pool of its own, so hashing never
blocks the event loop, at most `HASHING_THREADS` hashes (and their memory) run at once,
and those threads run at a lower scheduling priority: under load, a burst of password
sets waits for CPU instead of starving request handling, status reads and the worker on
the same machine. The time each hash takes is a metric (`onramp_password_hash_seconds`),
which the benchmarks report beside their figures.

Which passwords are accepted is one rule, `password_strength`: long enough, and rated
at least `MIN_PASSWORD_SCORE` by zxcvbn (common passwords, keyboard patterns, dates,
and the user's own email and username, given as its `user_inputs`); the API enforces it
and the set-password page shows the same verdict while the person types.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from argon2 import PasswordHasher
from prometheus_client import Histogram
from pydantic import BaseModel, SecretStr
from zxcvbn import zxcvbn  # type: ignore[import-untyped]  # ships no types

from onramp.tokens import derive_token

SET_PASSWORD = "set_password"  # noqa: S105 - a token purpose, not a secret
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
# zxcvbn's scale: 0 too guessable … 4 very unguessable; 3 is "safely unguessable".
MIN_PASSWORD_SCORE = 3
# zxcvbn refuses longer input (its matching is quadratic); the first 72 characters of a
# longer password are what it rates, which can only understate its strength.
_RATED_LENGTH = 72
# A user input shorter than this is too common a fragment to refuse on its own.
_MIN_INPUT_LENGTH = 4

# The library's defaults are its recommended argon2id parameters (RFC 9106, low memory).
_hasher = PasswordHasher()
HASHING_THREADS = 2
HASHING_NICENESS = 10  # added to the process's; argon2's own lane threads inherit it
HASH_SECONDS = Histogram(
    "onramp_password_hash_seconds",
    "Time one argon2id password hash took in the hashing pool (not the wait for a thread)",
    buckets=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4),
)


def _lower_priority() -> None:
    # On Linux, niceness is per thread (setpriority(2)); elsewhere this may lower the
    # whole process, so it is only done on Linux.
    if hasattr(os, "setpriority") and os.uname().sysname == "Linux":
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), current + HASHING_NICENESS)


_hashing = ThreadPoolExecutor(
    max_workers=HASHING_THREADS, thread_name_prefix="argon2", initializer=_lower_priority
)


def set_password_link(secret: SecretStr | str, base_url: str, token_id: str) -> str:
    """`<SET_PASSWORD_URL>?token=<derived token>`: built only where it is sent."""
    token = derive_token(secret, SET_PASSWORD, token_id)
    separator = "&" if "?" in base_url else "?"
    return f"{base_url}{separator}{urlencode({'token': token})}"


def hash_blocking(password: str) -> str:
    """The hash, computed in the calling thread (the API uses `hash_password`)."""
    started = time.perf_counter()
    try:
        return _hasher.hash(password)
    finally:
        HASH_SECONDS.observe(time.perf_counter() - started)


async def hash_password(password: str) -> str:
    """The argon2id hash (encoded, `$argon2id$…`), computed in the hashing pool."""
    return await asyncio.get_running_loop().run_in_executor(_hashing, hash_blocking, password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except Exception:  # any mismatch or malformed hash is "no"
        return False


class PasswordStrength(BaseModel):
    """zxcvbn's verdict on one password, as the page shows it and the API enforces it."""

    score: int
    acceptable: bool
    warning: str
    suggestions: list[str]


def _personal_parts(user_inputs: Sequence[str]) -> list[str]:
    """The user's own words: each input, and an email's local part and its pieces."""
    parts: list[str] = []
    for value in user_inputs:
        lowered = value.strip().lower()
        local = lowered.partition("@")[0]
        parts += [lowered, local, *local.replace("-", ".").replace("_", ".").split(".")]
    return sorted({part for part in parts if len(part) >= _MIN_INPUT_LENGTH})


def password_strength(password: str, user_inputs: Sequence[str] = ()) -> PasswordStrength:
    """Whether `password` may be set for the user whose email and username are
    `user_inputs`: at least MIN_PASSWORD_LENGTH characters, a zxcvbn score of at least
    MIN_PASSWORD_SCORE with the user's own words counted as guessable, and none of
    those words inside it."""
    parts = _personal_parts(user_inputs)
    rated = zxcvbn(password[:_RATED_LENGTH], user_inputs=parts)
    score = int(rated["score"])
    warning = str(rated["feedback"]["warning"] or "")
    suggestions = [str(text) for text in rated["feedback"]["suggestions"]]
    lowered = password.lower()
    personal = any(part in lowered for part in parts)
    if personal:
        score = min(score, MIN_PASSWORD_SCORE - 1)
        warning = "It contains your email address or username."
        suggestions = ["Leave out your email address and username.", *suggestions]
    if len(password) < MIN_PASSWORD_LENGTH:
        suggestions = [f"Use at least {MIN_PASSWORD_LENGTH} characters.", *suggestions]
    acceptable = score >= MIN_PASSWORD_SCORE and len(password) >= MIN_PASSWORD_LENGTH
    return PasswordStrength(
        score=score, acceptable=acceptable, warning=warning, suggestions=suggestions
    )


def weakness_message(strength: PasswordStrength) -> str:
    """What to tell a person whose password was refused (zxcvbn's feedback)."""
    words = [strength.warning, *strength.suggestions]
    advice = " ".join(word for word in words if word)
    return f"This password is too easy to guess. {advice}".strip()
