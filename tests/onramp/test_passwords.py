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


# --- which passwords are accepted ----------------------------------------------------------

_SAM = ("sam.rivers@example.com", "samrivers")


@pytest.mark.parametrize(
    "common", ["password1234", "qwertyuiop123", "iloveyou2024!", "123456789012"]
)
def test_common_passwords_are_refused(common: str) -> None:
    verdict = passwords.password_strength(common, _SAM)
    assert not verdict.acceptable
    assert verdict.score < passwords.MIN_PASSWORD_SCORE
    assert verdict.warning or verdict.suggestions


@pytest.mark.parametrize("personal", ["sam.rivers2024!", "Samrivers-1990", "riversrivers12"])
def test_the_users_own_email_and_username_are_refused(personal: str) -> None:
    verdict = passwords.password_strength(personal, _SAM)
    assert not verdict.acceptable
    # The same password for someone else is rated on its own.
    assert passwords.password_strength(personal, ()).score >= verdict.score


def test_a_strong_password_containing_the_email_local_part_is_refused() -> None:
    password = "sam.rivers violet kettle orbit"
    assert passwords.password_strength(password, ()).acceptable
    verdict = passwords.password_strength(password, _SAM)
    assert not verdict.acceptable
    assert "email address or username" in verdict.warning


def test_a_good_passphrase_is_accepted() -> None:
    verdict = passwords.password_strength("violet kettle orbit lantern", _SAM)
    assert verdict.acceptable
    assert verdict.score >= passwords.MIN_PASSWORD_SCORE


def test_length_counts_whatever_the_score() -> None:
    verdict = passwords.password_strength("xK#9vq!Lm2", _SAM)  # strong, but 10 characters
    assert not verdict.acceptable
    assert any("12 characters" in text for text in verdict.suggestions)


def test_a_very_long_password_is_rated_without_error() -> None:
    long = "violet kettle orbit lantern " * 30  # zxcvbn itself refuses over 72 characters
    assert passwords.password_strength(long, _SAM).acceptable


def test_the_refusal_message_carries_zxcvbns_feedback() -> None:
    verdict = passwords.password_strength("password1234", _SAM)
    message = passwords.weakness_message(verdict)
    assert message.startswith("This password is too easy to guess.")
    assert verdict.warning in message
