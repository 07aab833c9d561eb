"""The codec server: `POST /v1/codec/decode` and `POST /v1/codec/encode`, Temporal's codec
server protocol, so the Temporal UI (and `temporal … --codec-endpoint`) show the
payloads onramp encrypts (docs/ENCRYPTION.md).

Both take and answer `{"payloads": [{"metadata": {name: base64}, "data": base64}]}`.
They need an admin key (`Authorization: Bearer <key>`, which the UI sends when told to
pass its access token), unless `CODEC_SERVER_OPEN` (development only). The browser may
call them from `TEMPORAL_UI_ORIGIN` alone: that origin's preflight is answered and its
answers (errors included) carry `Access-Control-Allow-Origin`; other origins get no
CORS header.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, Field

from api.auth import require_scope
from api.errors import ERROR_RESPONSES, MALFORMED_BODY_RESPONSE, ApiError, ErrorResponse
from onramp.payload_codec import EncryptionCodec, PayloadDecodeError, RawPayload
from onramp.settings import ApiSettings

MAX_PAYLOADS = 1000
ALLOWED_METHODS = "POST, OPTIONS"

_bearer = HTTPBearer(auto_error=False, description="An onramp admin key")
_admin = require_scope("admin")


def _base64(value: str) -> str:
    _decode_base64(value)
    return value


def _decode_base64(value: str) -> bytes:
    # Proto3 JSON writes bytes in standard base64 and accepts the URL-safe alphabet too.
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value.encode("ascii"))
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("must be base64") from None


Base64 = Annotated[str, AfterValidator(_base64)]


class CodecPayload(BaseModel):
    """One Temporal payload in proto3 JSON: every byte string in base64."""

    metadata: dict[str, Base64] = Field(default_factory=dict, max_length=64)
    data: Base64 = ""

    def raw(self) -> RawPayload:
        return RawPayload(
            metadata={name: _decode_base64(value) for name, value in self.metadata.items()},
            data=_decode_base64(self.data),
        )

    @classmethod
    def of(cls, payload: RawPayload) -> CodecPayload:
        return cls(
            metadata={
                name: base64.b64encode(value).decode() for name, value in payload.metadata.items()
            },
            data=base64.b64encode(payload.data).decode(),
        )


class CodecPayloads(BaseModel):
    """The body and the answer of both routes."""

    payloads: list[CodecPayload] = Field(max_length=MAX_PAYLOADS)


def _cors_headers(request: Request, response: Response) -> None:
    allowed = request.app.state.settings.temporal_ui_origin
    origin = request.headers.get("origin")
    response.headers["Vary"] = "Origin"
    if origin is not None and origin == allowed:
        response.headers["Access-Control-Allow-Origin"] = origin


class _CorsRoute(APIRoute):
    """Every answer of these routes, errors included, carries the UI origin's CORS header:
    without it the browser hides a 401 or a 422 from the UI as a network failure."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handle(request)
            except Exception as error:
                handler = _error_handler(request, error)
                if handler is None:
                    raise
                response = await handler(request, error)
            _cors_headers(request, response)
            return response

        return with_cors


def _error_handler(
    request: Request, error: Exception
) -> Callable[[Request, Exception], Awaitable[Response]] | None:
    """The app's own handler of `error` (api/errors.py), so the error shape is the one."""
    handlers = request.app.exception_handlers
    for kind in type(error).__mro__:
        if kind in handlers and kind is not Exception:
            found: Callable[[Request, Exception], Awaitable[Response]] = handlers[kind]
            return found
    return None


async def _codec(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> EncryptionCodec:
    """The admin key's check (unless the server is open), then the configured codec."""
    settings: ApiSettings = request.app.state.settings
    if not settings.codec_server_open:
        await _admin(request, credentials)
    if not settings.onramp_payload_keys:
        raise ApiError(
            404,
            "codec_not_configured",
            "ONRAMP_PAYLOAD_KEYS is not set: this deployment does not encrypt payloads",
        )
    codec: EncryptionCodec | None = getattr(request.app.state, "payload_codec", None)
    if codec is None:
        codec = request.app.state.payload_codec = EncryptionCodec(settings.onramp_payload_keys)
    return codec


Codec = Annotated[EncryptionCodec, Depends(_codec)]

router = APIRouter(
    prefix="/v1/codec",
    tags=["codec"],
    route_class=_CorsRoute,
    responses={
        **ERROR_RESPONSES,
        400: MALFORMED_BODY_RESPONSE,
        404: {"model": ErrorResponse, "description": "Payload encryption is not configured"},
        # The API's JSON body limit holds here too: onramp's payloads are small, and the
        # UI asks for one event's payloads at a time.
        413: {"model": ErrorResponse, "description": "The body is larger than 64 KiB"},
    },
)


@router.post(
    "/decode",
    summary="Decrypt payloads for the Temporal UI or CLI (Temporal's codec server protocol)",
    responses={
        422: {"model": ErrorResponse, "description": "Not valid, or a payload does not decrypt"}
    },
)
async def decode(body: CodecPayloads, codec: Codec) -> CodecPayloads:
    try:
        decoded = codec.decode_raw([payload.raw() for payload in body.payloads])
    except PayloadDecodeError as error:
        raise ApiError(422, "payload_not_decodable", str(error)) from None
    return CodecPayloads(payloads=[CodecPayload.of(payload) for payload in decoded])


@router.post(
    "/encode",
    summary="Encrypt payloads with the current key (input the UI or CLI sends to a workflow)",
)
async def encode(body: CodecPayloads, codec: Codec) -> CodecPayloads:
    encoded = codec.encode_raw([payload.raw() for payload in body.payloads])
    return CodecPayloads(payloads=[CodecPayload.of(payload) for payload in encoded])


@router.options("/decode", include_in_schema=False)
@router.options("/encode", include_in_schema=False)
async def preflight(request: Request) -> Response:
    """The browser's CORS preflight: allowed for the configured UI origin only."""
    response = Response(status_code=204, headers={"Allow": ALLOWED_METHODS})
    allowed = request.app.state.settings.temporal_ui_origin
    if allowed is not None and request.headers.get("origin") == allowed:
        requested = request.headers.get("access-control-request-headers")
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = (
            requested or "authorization, content-type, x-namespace"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    return response
