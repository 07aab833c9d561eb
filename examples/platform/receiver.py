"""The example platform's receiver of onramp's events (a FastAPI app).

`POST /onramp/events` verifies each request with `standardwebhooks` against the
endpoint's secret(s) (`ONRAMP_EVENTS_SECRET`, comma-separated while a rotation
overlaps), answers 400 to a bad signature, and keeps each `webhook-id` once: onramp
retries until it gets a 2xx, so a repeated id answers 204 and adds nothing.
`GET /onramp/events` lists what arrived, in arrival order; `GET /tenants` and
`GET /t/<tenant_id>` show the tenants the worker made.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from examples.platform.store import Store

log = logging.getLogger("example-platform.receiver")

# onramp's event bodies are small; a larger request is not one of them.
MAX_BODY_BYTES = 256 * 1024


def secrets_from_env() -> list[str]:
    """`ONRAMP_EVENTS_SECRET`: one `whsec_…` secret, or several separated by commas."""
    raw = os.environ.get("ONRAMP_EVENTS_SECRET", "")
    return [secret.strip() for secret in raw.split(",") if secret.strip()]


def verified_event(
    verifiers: list[Webhook], body: bytes, headers: dict[str, str]
) -> dict[str, Any] | None:
    """The event when any secret verifies the request, else None."""
    for verifier in verifiers:
        try:
            event = verifier.verify(body, headers)
        except (WebhookVerificationError, ValueError):
            continue
        if isinstance(event, dict):
            return event
    return None


def create_app(store: Store, secrets: list[str]) -> FastAPI:
    """The receiver, verifying with `secrets` and keeping events in `store`."""
    if not secrets:
        raise ValueError("no signing secret: set ONRAMP_EVENTS_SECRET=whsec_…")
    verifiers = [Webhook(secret) for secret in secrets]
    app = FastAPI(title="Example platform", docs_url=None, redoc_url=None)

    @app.post("/onramp/events", status_code=204)
    async def receive(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        headers = dict(request.headers)
        event = verified_event(verifiers, body, headers)
        if event is None:
            log.warning("refused a request with a bad signature")
            return JSONResponse({"error": "bad signature"}, status_code=400)
        first = await asyncio.to_thread(store.record_event, headers["webhook-id"], event)
        log.info("%s %s%s", event.get("type"), headers["webhook-id"], "" if first else " (again)")
        return Response(status_code=204)

    @app.get("/onramp/events")
    async def events(user_id: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(store.events, user_id)

    @app.get("/tenants")
    async def tenants(user_id: str | None = None) -> list[dict[str, Any]]:
        return await asyncio.to_thread(store.tenants, user_id)

    @app.get("/t/{tenant_id}")
    async def dashboard(tenant_id: str) -> Response:
        tenant = await asyncio.to_thread(store.tenant, tenant_id)
        if tenant is None or tenant["state"] == "deprovisioned":
            raise HTTPException(404, "no such tenant")
        return JSONResponse({"tenant": tenant})

    return app


def run_receiver(host: str, port: int) -> None:
    """Serve the receiver with uvicorn until Ctrl-C."""
    import uvicorn

    store = Store(os.environ.get("PLATFORM_DB", "example-platform.db"))
    app = create_app(store, secrets_from_env())
    # Its own log line per event says more than an access log.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
