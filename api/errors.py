"""The one error shape, and every conversion of an exception into it.

Every error answer, for every route (unknown routes and wrong methods included), is
`{"error": {"code": "...", "message": "..."}}` with the right status. Anything
unexpected is a 500 `internal_error` whose details go to the log, never to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.pages.actions import Action
from api.pages.negotiation import answers_a_person
from onramp.db import DATABASE_UNAVAILABLE_ERRORS
from onramp.logging import log_event
from workflows import errors

logger = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """The shape of every error answer."""

    error: ErrorBody


class ApiError(Exception):
    """A domain error with its HTTP status, raised by routes and dependencies."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        actions: Sequence[Action] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra or {}
        # The ways forward a person gets on the error's page (end-user routes only).
        self.actions = tuple(actions)


@dataclass(frozen=True)
class ErrorAnswer:
    """The HTTP answer to a workflow's refusal. `message` may name `{message}`: the
    ApplicationError's message, or the operation's own words when there is none."""

    status: int
    code: str
    message: str = "{message}"
    headers: dict[str, str] | None = field(default=None, hash=False)


# The one table from the workflows' typed refusals (`ApplicationError.type`, carried by
# WorkflowUpdateFailedError and WorkflowFailureError) to HTTP. A type missing here is a
# failure of the operation itself: the operation's own answer (api/operations.py).
# Stripe refusing a request as invalid (StripeInvalidRequest) is such a failure, 502 in
# every route: the workflow built that request from its own state and configuration,
# and the same client request gets the same refusal.
WORKFLOW_ERRORS: dict[str, ErrorAnswer] = {
    errors.USER_NOT_FOUND: ErrorAnswer(404, "user_not_found"),
    errors.DUPLICATE_EMAIL: ErrorAnswer(
        409, "email_taken", "A user with this email already exists"
    ),
    errors.CHECKOUT_CONFLICT: ErrorAnswer(409, "subscription_exists"),
    # A tier and cycle this deployment does not sell: retrying will not help (so not a
    # 503), another tier or billing cycle may.
    errors.PRICE_NOT_CONFIGURED: ErrorAnswer(400, "price_not_configured"),
    errors.ONBOARDING_TOKEN_NOT_FOUND: ErrorAnswer(
        404, "token_not_found", "Unknown onboarding link"
    ),
    errors.ONBOARDING_TOKEN_GONE: ErrorAnswer(
        410, "token_gone", "This onboarding link is no longer valid ({message})"
    ),
    errors.PROVISIONING_NOT_FAILED: ErrorAnswer(409, "provisioning_not_failed"),
    errors.NO_STRIPE_BILLING: ErrorAnswer(400, "no_stripe_billing"),
    errors.SUBSCRIPTION_INVALID: ErrorAnswer(400, "invalid_plan_change"),
    errors.STRIPE_CARD_ERROR: ErrorAnswer(400, "card_declined"),
    errors.SUBSCRIPTION_CONFLICT: ErrorAnswer(409, "subscription_conflict"),
    errors.PAYMENT_METHOD_REQUIRED: ErrorAnswer(409, "payment_method_required"),
    errors.CHECKOUT_OPEN: ErrorAnswer(409, "checkout_open"),
    errors.PAYMENT_PENDING: ErrorAnswer(409, "payment_pending"),
    errors.BILLING_WRITE_FAILED: ErrorAnswer(502, "billing_write_failed"),
}

# The answer to a refusal of a type the table does not know, when no operation said.
WORKFLOW_FAILED = ErrorAnswer(502, "workflow_failed")


class WorkflowRefused(ApiError):
    """A workflow's refusal (an update's or the workflow's failure) as its HTTP answer.

    `error_type` is the ApplicationError's type, for the few callers that act on one
    (the checkout's retry while a run closes, the plan change's next action)."""

    def __init__(self, answer: ErrorAnswer, error_type: str | None, message: str) -> None:
        super().__init__(
            answer.status,
            answer.code,
            answer.message.format(message=message),
            headers=answer.headers,
        )
        self.error_type = error_type


def workflow_refusal(
    failure: WorkflowUpdateFailedError | WorkflowFailureError,
    fallback: ErrorAnswer = WORKFLOW_FAILED,
    failed_text: str = "The operation failed",
) -> WorkflowRefused:
    """The HTTP answer to a failed update or workflow, by the one table."""
    cause = failure.cause
    if isinstance(cause, ApplicationError):
        answer = WORKFLOW_ERRORS.get(cause.type or "", fallback)
        return WorkflowRefused(answer, cause.type, cause.message)
    return WorkflowRefused(fallback, None, failed_text)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    502: "bad_gateway",
    503: "service_unavailable",
}

# For the OpenAPI schema: any route with parameters or a body may answer 422 (without
# it, FastAPI documents its own `{"detail": [...]}` shape, which is never sent).
VALIDATION_ERROR_RESPONSE: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "The request is not valid",
}

# For the OpenAPI schema: the error statuses every authenticated route may answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key"},
    403: {"model": ErrorResponse, "description": "The key's scope does not allow this"},
    422: VALIDATION_ERROR_RESPONSE,
}

# For the OpenAPI schema of a route that takes a JSON body: FastAPI answers a body that
# is not UTF-8 with 400 (invalid JSON is a 422).
MALFORMED_BODY_RESPONSE: dict[str, Any] = {
    "model": ErrorResponse,
    "description": "The body could not be read (not UTF-8)",
}


def json_error_response(description: str) -> dict[str, Any]:
    """An error in the OpenAPI schema of a route whose success is not JSON (an HTML page).

    With `model=`, FastAPI would document the error under the route's own media type.
    """
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _describe_validation(error: RequestValidationError) -> str:
    parts = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
        parts.append(f"{location or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, extra=exc.extra)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    try:
        default = HTTPStatus(exc.status_code).phrase
    except ValueError:
        default = "Error"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, detail or default, headers=headers)


async def _workflow_failure(request: Request, exc: Exception) -> JSONResponse:
    # The gateway converts every refusal it sees; this keeps the shape for any other.
    assert isinstance(exc, WorkflowUpdateFailedError | WorkflowFailureError)
    return await _api_error(request, workflow_refusal(exc))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", _describe_validation(exc))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log_event(
        logger,
        "API_UNEXPECTED_ERROR",
        level=logging.ERROR,
        path=request.url.path,
        method=request.method,
        error_type=type(exc).__name__,
    )
    logger.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "Internal server error")


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log_event(
        logger,
        "API_DATABASE_UNAVAILABLE",
        level=logging.WARNING,
        path=request.url.path,
        method=request.method,
        error_type=type(exc).__name__,
    )
    return error_response(
        503,
        "database_unavailable",
        "The database is unavailable for a moment; retry shortly",
        headers={"Retry-After": "1"},
    )


class ErrorPage(Protocol):
    """Renders an error as a page for a person (api/pages/error_pages.py)."""

    def __call__(
        self,
        request: Request,
        status: int,
        code: str,
        message: str,
        actions: Sequence[Action] = (),
        headers: dict[str, str] | None = None,
    ) -> Response: ...


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _for_people(handler: Handler, error_page: ErrorPage | None) -> Callable[..., Any]:
    """The handler's JSON answer, or the same error as a page when a browser opened an
    end-user route (api/pages/negotiation.py)."""

    async def answer(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if error_page is None or not answers_a_person(request):
            return response
        error = json.loads(bytes(response.body))["error"]
        return error_page(
            request,
            response.status_code,
            error["code"],
            error["message"],
            getattr(exc, "actions", ()),
            dict(response.headers),
        )

    return answer


def install_error_handlers(app: FastAPI, *, error_page: ErrorPage | None = None) -> None:
    handlers: list[tuple[type[Exception], Handler]] = [
        (ApiError, _api_error),
        (WorkflowUpdateFailedError, _workflow_failure),
        (WorkflowFailureError, _workflow_failure),
        *((unavailable, _database_unavailable) for unavailable in DATABASE_UNAVAILABLE_ERRORS),
        (StarletteHTTPException, _http_error),
        (RequestValidationError, _validation_error),
        (Exception, _unexpected_error),
    ]
    for kind, handler in handlers:
        app.add_exception_handler(kind, _for_people(handler, error_page))
