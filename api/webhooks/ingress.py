"""`POST /v1/webhooks/stripe`: read, verify, store, answer.

Stripe retries anything but a 2xx for days, and finalizes a renewal only once its
`invoice.created` is acknowledged, so the answer comes as soon as the event is stored:
200 once the event is in the inbox (new or a duplicate), 400/413 when it never will be
accepted, 503 only when Postgres could not store it. No Temporal call is made on the
request path: the API process's dispatcher (`inbox_dispatcher.InboxDispatcher`), woken here,
hands the event to its workflow afterwards and retries while Temporal is down.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from api.deps import Pool, Settings
from api.errors import VALIDATION_ERROR_RESPONSE, ApiError, ErrorResponse
from api.webhooks import metrics
from api.webhooks.events import InvalidEvent, StripeEvent, decode_body, parse_event
from api.webhooks.signature import InvalidSignature, verify_signature
from onramp.db import DATABASE_UNAVAILABLE_ERRORS
from onramp.logging import log_event
from onramp.repositories import webhook_events as webhook_inbox
from onramp.repositories.webhook_events import InboxStatus

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

router = APIRouter(tags=["webhooks"])

# Postgres away, too slow, or refusing the statement: the only reasons to answer 5xx.
_NOT_STORED: tuple[type[Exception], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class WebhookAck(BaseModel):
    """The event is stored; Stripe may stop retrying. `status` is the inbox row's
    (`pending` for a new event: it is dispatched after this answer)."""

    received: bool = True
    event_id: str
    status: InboxStatus
    duplicate: bool


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Invalid webhook signature (`invalid_signature`), or a body that is "
        "not UTF-8, not JSON or not a Stripe event (`invalid_payload`)",
    },
    413: {"model": ErrorResponse, "description": "Body over 1 MiB (`payload_too_large`)"},
    422: VALIDATION_ERROR_RESPONSE,
    503: {
        "model": ErrorResponse,
        "description": "Postgres could not store the event (`database_unavailable`); "
        "Stripe delivers it again later",
    },
}

_BODY_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The Stripe event exactly as Stripe sent it (signed bytes)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _reject(status: int, code: str, message: str, reason: str, **fields: Any) -> ApiError:
    metrics.WEBHOOK_REJECTIONS.labels(reason).inc()
    log_event(logger, "WEBHOOK_REJECTED", logging.WARNING, reason=reason, **fields)
    return ApiError(status, code, message)


async def _read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it passes the limit.

    `Content-Length` only allows an early refusal; the bytes are counted as they come
    (a chunked body has no length, and a declared one may lie).
    """
    too_large = ("payload_too_large", "Webhook body is larger than 1 MiB", "too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _reject(413, *too_large)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise _reject(413, *too_large)
    except ClientDisconnect as error:
        raise ApiError(400, "bad_request", "The client went away mid-body") from error
    return bytes(body)


def _verified_event(raw_body: bytes, signature: str | None, settings: Settings) -> StripeEvent:
    """The event, once its body is text, its signature one of ours and its shape an
    event's; else 400 (counted and logged as a rejection)."""
    try:
        text = decode_body(raw_body)
    except InvalidEvent as error:
        raise _reject(400, "invalid_payload", str(error), "invalid_payload") from error
    secrets = [secret.get_secret_value() for secret in settings.stripe_webhook_secrets]
    try:
        verify_signature(text, signature, secrets)
    except InvalidSignature as error:
        metrics.SIGNATURE_FAILURES.labels(error.problem).inc()
        raise _reject(
            400,
            "invalid_signature",
            "Invalid webhook signature",
            "invalid_signature",
            problem=error.problem,
        ) from error
    try:
        return parse_event(text)
    except InvalidEvent as error:
        raise _reject(400, "invalid_payload", str(error), "invalid_payload") from error


async def _store(
    pool: asyncpg.Pool, event: StripeEvent, raw_body: bytes
) -> tuple[bool, InboxStatus]:
    """Store the event in the inbox (one statement in its own short transaction: from
    here on nothing is lost); 503 when Postgres could not."""
    try:
        return await webhook_inbox.store_event(pool, event.to_inbox(raw_body))
    except _NOT_STORED as error:
        log_event(
            logger,
            "WEBHOOK_NOT_STORED",
            logging.ERROR,
            event_id=event.id,
            type=event.type,
            error=type(error).__name__,
        )
        raise ApiError(
            503,
            "database_unavailable",
            "The event could not be stored; deliver it again later",
            headers={"Retry-After": "5"},
        ) from error


@router.post(
    "/v1/webhooks/stripe",
    summary="Receive a Stripe event (signed with Stripe-Signature; no API key)",
    response_model=WebhookAck,
    responses=_RESPONSES,
    openapi_extra=_BODY_SCHEMA,
)
async def receive_stripe_event(
    request: Request,
    settings: Settings,
    pool: Pool,
    stripe_signature: Annotated[
        str | None, Header(alias="Stripe-Signature", description="t=…,v1=… from Stripe")
    ] = None,
) -> WebhookAck:
    raw_body = await _read_body(request)
    event = _verified_event(raw_body, stripe_signature, settings)
    log_event(
        logger,
        "WEBHOOK_RECEIVED",
        event_id=event.id,
        type=event.type,
        livemode=event.livemode,
        account=event.account,
    )
    stored, status = await _store(pool, event, raw_body)
    if status == "pending":
        inbox_dispatcher = getattr(request.app.state, "inbox_dispatcher", None)
        if inbox_dispatcher is not None:
            inbox_dispatcher.wake()
    return WebhookAck(event_id=event.id, status=status, duplicate=not stored)
