"""Pure decisions of `onboarding-<user>`: which tokens are open, due or completed,
whether a token may open a link, whether the last account link can be handed out
again, how polling and a refused re-read back off, and when the run may end.

No I/O and no clock, like `subscription_state`: callers pass `now` (the workflow's
time), and the tests call these directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workflows import errors
from workflows.contracts.onboarding import (
    OnboardingTokenRecord,
    OnboardingTokenStatus,
    OpenOnboardingLinkResult,
    StuckStep,
)
from workflows.failures import Refusal

OPEN: tuple[OnboardingTokenStatus, ...] = ("pending", "in_progress")
# A refused re-read is tried again after 1 min, then 2, 4, ... at most 30 min apart.
READ_RETRY_FIRST = timedelta(minutes=1)
READ_RETRY_MAX = timedelta(minutes=30)
# An account link handed out within its life is handed out again instead of asking
# Stripe for another, while it has at least this long left (Stripe's links last about
# five minutes; the user needs a moment to follow the redirect).
LINK_REUSE_MARGIN = timedelta(seconds=60)


@dataclass
class Token:
    status: OnboardingTokenStatus
    expires_at: datetime
    # The last account link of this token, sealed (never the URL itself), and its end.
    sealed_link: str | None = None
    link_expires_at: datetime | None = None
    account_id: str | None = None


Tokens = dict[str, Token]


def open_tokens(tokens: Tokens) -> list[str]:
    return [token_id for token_id, t in tokens.items() if t.status in OPEN]


def in_progress(tokens: Tokens) -> bool:
    return any(t.status == "in_progress" for t in tokens.values())


def due_tokens(tokens: Tokens, now: datetime) -> list[str]:
    """Open tokens whose expiry has passed."""
    return [token_id for token_id, t in tokens.items() if t.status in OPEN and t.expires_at <= now]


def revoke_other_pending(tokens: Tokens, issued: str) -> None:
    """A new token replaces the user's pending ones (in-progress ones keep running)."""
    for token_id, token in tokens.items():
        if token_id != issued and token.status == "pending":
            token.status = "revoked"


def token_refusal(record: OnboardingTokenRecord, user_id: str, now: datetime) -> Refusal | None:
    """A token opens a link only when it is the user's, open and not yet expired."""
    if record.user_id != user_id:
        return Refusal(
            f"no onboarding token {record.token_id} for this user",
            errors.ONBOARDING_TOKEN_NOT_FOUND,
        )
    if record.status not in OPEN or record.expires_at <= now:
        shown = record.status if record.status not in OPEN else "expired"
        return Refusal(f"onboarding token is {shown}", errors.ONBOARDING_TOKEN_GONE)
    return None


def reusable_link(
    token: Token | None, now: datetime, *, forced_new: bool
) -> OpenOnboardingLinkResult | None:
    """The token's last account link while it has time left, so repeated opens cost
    neither a Stripe call nor a history of their own. Stripe's refresh_url (the link
    was visited or expired at Stripe) always asks for a new one."""
    if (
        forced_new
        or token is None
        or token.sealed_link is None
        or token.link_expires_at is None
        or token.account_id is None
        or token.link_expires_at - now < LINK_REUSE_MARGIN
    ):
        return None
    return OpenOnboardingLinkResult(
        sealed_url=token.sealed_link,
        expires_at=token.link_expires_at,
        account_id=token.account_id,
    )


def mark_completed(tokens: Tokens, completed_ids: list[str], onboarding_complete: bool) -> None:
    """Tokens Postgres closed as completed, and every in-progress one once the re-read
    account says onboarding is complete."""
    for token_id in completed_ids:
        if token_id in tokens:
            tokens[token_id].status = "completed"
    if onboarding_complete:
        for token in tokens.values():
            if token.status == "in_progress":
                token.status = "completed"


def next_poll_interval(poll: timedelta, poll_max: timedelta) -> timedelta:
    """A quiet re-read: webhooks stay the primary signal, so the next look is further
    away (capped)."""
    return min(poll * 2, poll_max)


def read_retry_backoff(failures: int) -> timedelta:
    """The wait before the next attempt after `failures` refused re-reads in a row."""
    factor: int = 2 ** min(failures - 1, 10)
    return min(READ_RETRY_FIRST * factor, READ_RETRY_MAX)


def stuck_after(
    previous: StuckStep | None,
    step: str,
    error_type: str | None,
    message: str,
    now: datetime,
) -> StuckStep:
    """The stuck step after one more refusal: counted, its first time kept, and the
    next attempt scheduled."""
    failures = previous.failures + 1 if previous is not None else 1
    return StuckStep(
        step=step,
        error_type=error_type,
        message=message,
        failures=failures,
        since=previous.since if previous is not None else now,
        next_attempt_at=now + read_retry_backoff(failures),
    )


def may_end(tokens: Tokens, *, recheck: bool, stuck: StuckStep | None) -> bool:
    """No token is open, no re-read is owed and none is being retried."""
    return not open_tokens(tokens) and not recheck and stuck is None


def next_deadline(
    tokens: Tokens, next_poll: datetime | None, stuck: StuckStep | None
) -> datetime | None:
    """The earliest of: an open token's expiry, the next poll, the next retry."""
    deadlines = [t.expires_at for t in tokens.values() if t.status in OPEN]
    if next_poll is not None:
        deadlines.append(next_poll)
    if stuck is not None:
        deadlines.append(stuck.next_attempt_at)
    return min(deadlines) if deadlines else None
