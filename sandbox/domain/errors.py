"""Stripe's error envelope: `{"error": {"type", "code", "message", "param", ...}}`."""

from __future__ import annotations

from typing import Any

from sandbox.domain.jsontypes import Obj

DOCS = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error answered in Stripe's envelope with Stripe's status code.

    `validation` marks errors found before the endpoint starts executing; like Stripe,
    the sandbox does not save those under an idempotency key.
    """

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        headers: dict[str, str] | None = None,
        validation: bool = False,
        extra: Obj | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.headers = headers or {}
        self.validation = validation
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> Obj:
        """The JSON body Stripe would send for this error."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOCS + self.code.replace("_", "-")
        if self.decline_code:
            error["decline_code"] = self.decline_code
        if self.param is not None:
            error["param"] = self.param
        if request_id:
            error["request_log_url"] = (
                f"https://dashboard.stripe.com/test/logs/{request_id}?t=sandbox"
            )
        error.update(self.extra)
        return {"error": error}


def invalid(
    message: str, param: str | None = None, *, code: str | None = None, validation: bool = False
) -> StripeError:
    """A 400 `invalid_request_error`."""
    return StripeError(
        400, "invalid_request_error", message, code=code, param=param, validation=validation
    )


def bad_param(message: str, param: str) -> StripeError:
    """A 400 for a parameter that fails validation (not saved under an idempotency key)."""
    return StripeError(
        400,
        "invalid_request_error",
        message,
        param=param,
        code="parameter_invalid_empty" if "empty string" in message else None,
        validation=True,
    )


def no_such(kind: str, object_id: str, param: str = "id") -> StripeError:
    """A 404 `resource_missing`: "No such customer: 'cus_x'"."""
    return StripeError(
        404,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param,
    )


def card_declined(code: str, decline_code: str | None, message: str, **extra: Any) -> StripeError:
    """A 402 `card_error` like a declined charge."""
    return StripeError(
        402, "card_error", message, code=code, decline_code=decline_code, extra=extra
    )


def api_error(message: str = "An unknown error occurred") -> StripeError:
    """A 500 `api_error`."""
    return StripeError(500, "api_error", message)
