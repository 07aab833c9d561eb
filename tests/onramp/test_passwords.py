"""Password hashing: argon2id in a bounded pool whose threads yield CPU to requests."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from prometheus_client import REGISTRY

from onramp import passwords
from tests.support.polling import until


def _hash_metric(suffix: str) -> float:
    value = REGISTRY.get_sample_value(f"onramp_password_hash_seconds_{suffix}")
    return value or 0.0


async def test_hash_is_argon2id_and_verifies() -> None:
    hashed_before, seconds_before = _hash_metric("count"), _hash_metric("sum")
    encoded = await passwords.hash_password("correct horse battery")
    # The time it took is counted, for the benchmarks to report.
    assert _hash_metric("count") == hashed_before + 1
    assert _hash_metric("sum") > seconds_before
    assert encoded.startswith("$argon2id$")
    assert passwords.verify_password(encoded, "correct horse battery")
    assert not passwords.verify_password(encoded, "wrong horse battery")
    assert not passwords.verify_password("not a hash", "correct horse battery")


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="per-thread niceness is Linux's")
async def test_hashing_threads_run_below_the_event_loop() -> None:
    loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def niceness_in_pool() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    in_pool = await asyncio.get_running_loop().run_in_executor(passwords._hashing, niceness_in_pool)
    assert in_pool == loop_niceness + passwords.HASHING_NICENESS
    # The event loop's own thread keeps its priority.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_niceness


async def test_at_most_hashing_threads_hashes_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def occupy() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1

    loop = asyncio.get_running_loop()
    tasks = [loop.run_in_executor(passwords._hashing, occupy) for _ in range(5)]
    await until(lambda: running >= passwords.HASHING_THREADS, what="the pool to fill")
    await asyncio.sleep(0.1)  # time for a thread beyond the limit to start, were there one
    release.set()
    await asyncio.gather(*tasks)
    assert most == passwords.HASHING_THREADS
