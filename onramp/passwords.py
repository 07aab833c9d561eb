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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from argon2 import PasswordHasher
from prometheus_client import Histogram
from pydantic import SecretStr

from onramp.tokens import derive_token

SET_PASSWORD = "set_password"  # noqa: S105 - a token purpose, not a secret
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

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
