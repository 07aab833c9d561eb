"""The one error shape, and every conversion of an exception into it.

Every error answer, for every route (unknown routes and wrong methods included), is
`{"error": {"code": "...", "message": "..."}}` with the right status. Anything
unexpected is a 500 `internal_error` whose details go to the log, never to the client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from onramp.db import DATABASE_UNAVAILABLE_ERRORS
from onramp.logging import log_event

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
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra or {}


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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    for unavailable in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(unavailable, _database_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
