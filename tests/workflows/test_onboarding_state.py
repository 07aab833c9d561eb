"""The pure decisions of `onboarding-<user>` (no Temporal, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows import errors
from workflows.contracts.onboarding import OnboardingTokenRecord
from workflows.onboarding_state import (
    LINK_REUSE_MARGIN,
    READ_RETRY_FIRST,
    READ_RETRY_MAX,
    Token,
    due_tokens,
    in_progress,
    mark_completed,
    may_end,
    next_deadline,
    next_poll_interval,
    open_tokens,
    read_retry_backoff,
    reusable_link,
    revoke_other_pending,
    stuck_after,
    token_refusal,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def record(**fields: object) -> OnboardingTokenRecord:
    values: dict[str, object] = {
        "token_id": "tok_1",
        "user_id": "user-1",
        "status": "pending",
        "expires_at": NOW + timedelta(hours=1),
        "has_state": False,
    }
    return OnboardingTokenRecord.model_validate({**values, **fields})


def test_open_due_and_in_progress_tokens() -> None:
    tokens = {
        "pending": Token("pending", NOW + timedelta(hours=1)),
        "due": Token("in_progress", NOW - timedelta(seconds=1)),
        "done": Token("completed", NOW - timedelta(hours=1)),
    }
    assert open_tokens(tokens) == ["pending", "due"]
    assert due_tokens(tokens, NOW) == ["due"]
    assert in_progress(tokens)
    assert not in_progress({"pending": tokens["pending"]})


def test_a_new_token_revokes_the_other_pending_ones_only() -> None:
    tokens = {
        "old": Token("pending", NOW),
        "running": Token("in_progress", NOW),
        "new": Token("pending", NOW),
    }
    revoke_other_pending(tokens, "new")
    assert [t.status for t in tokens.values()] == ["revoked", "in_progress", "pending"]


def test_only_the_users_open_unexpired_token_opens_a_link() -> None:
    assert token_refusal(record(), "user-1", NOW) is None
    other = token_refusal(record(), "user-2", NOW)
    assert other is not None and other.error_type == errors.ONBOARDING_TOKEN_NOT_FOUND
    completed = token_refusal(record(status="completed"), "user-1", NOW)
    assert completed is not None and completed.error_type == errors.ONBOARDING_TOKEN_GONE
    assert completed.message == "onboarding token is completed"
    expired = token_refusal(record(expires_at=NOW), "user-1", NOW)
    assert expired is not None and expired.message == "onboarding token is expired"


def test_the_last_link_is_handed_out_again_while_it_has_time_left() -> None:
    token = Token(
        "in_progress",
        NOW + timedelta(hours=1),
        sealed_link="sealed",
        link_expires_at=NOW + LINK_REUSE_MARGIN + timedelta(seconds=1),
        account_id="acct_1",
    )
    reused = reusable_link(token, NOW, forced_new=False)
    assert reused is not None and reused.sealed_url == "sealed" and reused.account_id == "acct_1"
    assert reusable_link(token, NOW, forced_new=True) is None
    assert reusable_link(token, NOW + timedelta(seconds=2), forced_new=False) is None
    assert reusable_link(Token("pending", NOW), NOW, forced_new=False) is None
    assert reusable_link(None, NOW, forced_new=False) is None


def test_completion_closes_the_tokens_postgres_closed_and_every_one_in_progress() -> None:
    tokens = {
        "a": Token("pending", NOW),
        "b": Token("in_progress", NOW),
        "c": Token("pending", NOW),
    }
    mark_completed(tokens, ["a", "unknown"], onboarding_complete=False)
    assert [t.status for t in tokens.values()] == ["completed", "in_progress", "pending"]
    mark_completed(tokens, [], onboarding_complete=True)
    assert [t.status for t in tokens.values()] == ["completed", "completed", "pending"]


def test_polling_doubles_up_to_its_cap() -> None:
    assert next_poll_interval(timedelta(minutes=2), timedelta(minutes=30)) == timedelta(minutes=4)
    assert next_poll_interval(timedelta(minutes=20), timedelta(minutes=30)) == timedelta(minutes=30)


def test_a_refused_reread_backs_off_from_one_minute_to_thirty() -> None:
    assert read_retry_backoff(1) == READ_RETRY_FIRST
    assert read_retry_backoff(2) == 2 * READ_RETRY_FIRST
    assert read_retry_backoff(5) == 16 * READ_RETRY_FIRST
    assert read_retry_backoff(50) == READ_RETRY_MAX


def test_a_stuck_step_counts_refusals_and_keeps_its_first_time() -> None:
    first = stuck_after(None, "retrieve_connect_account", "StripeAuthentication", "401", NOW)
    assert (first.failures, first.since, first.next_attempt_at) == (
        1,
        NOW,
        NOW + READ_RETRY_FIRST,
    )
    later = NOW + timedelta(minutes=1)
    second = stuck_after(first, "retrieve_connect_account", None, "503", later)
    assert (second.failures, second.since, second.message) == (2, NOW, "503")
    assert second.next_attempt_at == later + 2 * READ_RETRY_FIRST


def test_the_run_ends_only_with_nothing_open_owed_or_stuck() -> None:
    closed = {"a": Token("completed", NOW)}
    assert may_end(closed, recheck=False, stuck=None)
    assert not may_end(closed, recheck=True, stuck=None)
    stuck = stuck_after(None, "retrieve_connect_account", None, "503", NOW)
    assert not may_end(closed, recheck=False, stuck=stuck)
    assert not may_end({"a": Token("pending", NOW)}, recheck=False, stuck=None)


def test_the_next_deadline_is_the_earliest_expiry_poll_or_retry() -> None:
    tokens = {
        "open": Token("pending", NOW + timedelta(hours=2)),
        "closed": Token("expired", NOW),
    }
    assert next_deadline({}, None, None) is None
    assert next_deadline(tokens, None, None) == NOW + timedelta(hours=2)
    assert next_deadline(tokens, NOW + timedelta(minutes=5), None) == NOW + timedelta(minutes=5)
    stuck = stuck_after(None, "retrieve_connect_account", None, "503", NOW)
    assert next_deadline(tokens, NOW + timedelta(minutes=5), stuck) == NOW + READ_RETRY_FIRST
