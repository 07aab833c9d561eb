"""What every request and every response passes at the edge of the API.

`RequestLimitsMiddleware` bounds what a request may cost before any route sees it: the
size of its headers (431), the size of its body (413, counted as it arrives, whatever
`Content-Length` says) and how deep its JSON nests (422). A route that enforces a limit
of its own while streaming (the Stripe webhook: 1 MiB, with its own metrics) is named in
`own_limit_paths` and passed through untouched.

`SecurityHeadersMiddleware` adds `X-Content-Type-Options: nosniff` to every answer and,
to every HTML page, a Content-Security-Policy (unless the page sets its own), framing
refused (`X-Frame-Options: DENY`, `frame-ancestors 'none'`) and `Referrer-Policy`.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from api.json_limits import nesting_depth

JSON_BODY_LIMIT_BYTES = 64 * 1024
HEADER_LIMIT_BYTES = 32 * 1024
JSON_DEPTH_LIMIT = 32

# Scripts, styles, images and fetches from the API's own origin only; no plugin, no
# <base>, no framing. A page with an inline script sets its own policy with the
# script's hash (e.g. the set-password form).
DEFAULT_HTML_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# FastAPI's interactive docs load Swagger UI / ReDoc from jsDelivr and start them with
# an inline script; they are off unless API_DOCS_ENABLED.
DOCS_HTML_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; worker-src blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def html_policy(*, script_hashes: Iterable[str] = (), form_targets: Iterable[str] = ()) -> str:
    """The default policy, allowing the inline scripts with these sha256 hashes (base64)
    and forms whose submission ends at these origins (`form-action` also governs the
    redirect that answers a form: a set-password form answered by a 303 to the
    platform's dashboard needs the dashboard's origin here)."""
    policy = DEFAULT_HTML_POLICY
    sources = " ".join(f"'sha256-{digest}'" for digest in script_hashes)
    if sources:
        policy = policy.replace("script-src 'self'", f"script-src 'self' {sources}")
    targets = " ".join(dict.fromkeys(form_targets))
    if targets:
        policy = policy.replace("form-action 'self'", f"form-action 'self' {targets}")
    return policy


class RequestLimitsMiddleware:
    """Refuse oversized headers and bodies and deeply nested JSON, in the error shape."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int = JSON_BODY_LIMIT_BYTES,
        max_header_bytes: int = HEADER_LIMIT_BYTES,
        max_json_depth: int = JSON_DEPTH_LIMIT,
        own_limit_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.max_json_depth = max_json_depth
        self.own_limit_paths = frozenset(own_limit_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            response = error_response(
                431,
                "headers_too_large",
                f"The request's headers are larger than {self.max_header_bytes // 1024} KiB",
            )
            await response(scope, receive, send)
            return
        if scope["path"] in self.own_limit_paths:
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, receive, send)
            return
        # Read the whole (small) body first: counted as it comes, so a chunked body or
        # a Content-Length that lies is refused at the limit, never buffered past it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and nesting_depth(body) > self.max_json_depth:
            response = error_response(
                422,
                "validation_error",
                f"body: JSON nested deeper than {self.max_json_depth} levels",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The connection stays open: uvicorn discards the rest of a body once the answer
        # is complete, and the client, still sending, reads the 413. Closing instead would
        # reset the connection under unread bytes and lose the answer.
        response = error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {self.max_body_bytes // 1024} KiB",
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once; then the server's own messages (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class SecurityHeadersMiddleware:
    """nosniff on every answer; CSP, framing and referrer rules on every HTML page."""

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_HTML_POLICY if scope["path"] in self.docs_paths else DEFAULT_HTML_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                added = [(b"x-content-type-options", b"nosniff")]
                content_type = next(
                    (value for name, value in headers if name.lower() == b"content-type"), b""
                )
                if content_type.lower().startswith(b"text/html"):
                    added += [
                        (b"content-security-policy", policy.encode()),
                        (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer"),
                    ]
                headers += [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
