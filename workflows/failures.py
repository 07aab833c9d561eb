"""Reading the failures of workflow steps, and raising the workflow's own failures.

A regular activity's failure reaches workflow code as `ActivityError`, the activity's
own error its cause. A local activity's (a `local_steps` step) arrives as the
activity's own `ApplicationError` when the activity failed, and as `ActivityError`
only when it timed out. `STEP_FAILURES` is what a caller catches to compensate
whatever kind of step failed, and the readers below take any of these shapes. A
workflow's own refusal is an `ApplicationError` too: catch `STEP_FAILURES` only
around steps, or where the refusal is meant to be handled alike.

A workflow's own failure (an update refused, a run failed for good) is an
`ApplicationError` with a type from `workflows.errors`, never retried: `refuse` builds
it, and `as_update_failure` turns a step's failure into one that keeps its type for
the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.exceptions import ActivityError, ApplicationError

from workflows import errors

STEP_FAILURES = (ActivityError, ApplicationError)


def cause_of(error: BaseException) -> BaseException:
    """What failed: the activity's error under an `ActivityError`, else the error."""
    if isinstance(error, ActivityError) and error.cause is not None:
        return error.cause
    return error


def failure_type(error: BaseException) -> str | None:
    """The `workflows.errors` type of a step's failure, None when it has none."""
    cause = cause_of(error)
    return cause.type if isinstance(cause, ApplicationError) else None


def failure_message(error: BaseException) -> str:
    """The activity's own message (no SDK wrapper text)."""
    cause = cause_of(error)
    return cause.message if isinstance(cause, ApplicationError) else str(cause)


def failure_chain(error: BaseException, depth: int = 3) -> str:
    """The failure and its causes (the last attempt's Stripe error is nested under the
    retry policy's "giving up")."""
    parts: list[str] = []
    current: BaseException | None = cause_of(error)
    while current is not None and len(parts) < depth:
        parts.append(str(current))
        nested = getattr(current, "cause", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return " <- ".join(parts)


@dataclass(frozen=True)
class Refusal:
    """Why a pure decision refuses a request: the message and the `workflows.errors`
    type (the workflow raises it with `refused`)."""

    message: str
    error_type: str


def refused(refusal: Refusal) -> ApplicationError:
    return refuse(refusal.message, refusal.error_type)


def refuse(message: str, error_type: str, *details: Any) -> ApplicationError:
    """The workflow's own typed, non-retryable failure."""
    return ApplicationError(message, *details, type=error_type, non_retryable=True)


def as_update_failure(
    error: BaseException, *, default_type: str | None = errors.STRIPE_UNAVAILABLE
) -> ApplicationError:
    """A step's failure as an update's typed failure: the activity's message and type
    (the API maps the type), `default_type` when it has none."""
    return ApplicationError(
        failure_message(error), type=failure_type(error) or default_type, non_retryable=True
    )
