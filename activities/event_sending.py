"""Sending one outbound event: sign it as Standard Webhooks says, POST it, record the attempt.

Both ways of delivering use it: the dispatcher's direct delivery (a batch, users side by
side) and a lane's retry (one event). The signing secret is opened here and nowhere
else; no workflow sees it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from onramp.event_secrets import open_secret
from onramp.events import payload
from onramp.logging import log_event
from onramp.repositories import event_deliveries, event_endpoints
from onramp.repositories.event_deliveries import NewAttempt
from onramp.repositories.event_endpoints import EndpointSecrets
from onramp.repositories.outbound_events import OutboundEventRow

logger = logging.getLogger(__name__)

_ERROR_CHARS = 300


@dataclass(frozen=True)
class Attempt:
    """One attempt at one event, as the attempt row records it."""

    attempt: int
    replay: bool
    timeout_seconds: float
    # When this attempt fails: the wait before the next one, or None when it is the last.
    retry_in_seconds: float | None
    mark_failing: bool = False


@dataclass(frozen=True)
class Sent:
    delivered: bool
    response_code: int | None
    error: str | None


class EventSender:
    def __init__(self, pool: asyncpg.Pool, token_secret: SecretStr) -> None:
        self.pool = pool
        self.token_secret = token_secret
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        # One connection pool per worker; redirects are not followed (a signed body
        # goes only to the URL the operator configured).
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http

    async def send(
        self, secrets: EndpointSecrets, event: OutboundEventRow, attempt: Attempt
    ) -> Sent:
        body = _body(event)
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            headers = self._signed_headers(secrets, event.id, body)
            response = await self._client().post(
                secrets.url, content=body, headers=headers, timeout=attempt.timeout_seconds
            )
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as failure:
            error = (f"{type(failure).__name__}: {failure}")[:_ERROR_CHARS]
        except UnopenableSecret as failure:
            # Retried like a failed delivery, so the operator sees it in the attempts.
            error = str(failure)
        latency_ms = int((time.monotonic() - started) * 1000)
        sent = Sent(delivered=error is None, response_code=code, error=error)
        await self._record(secrets, event, attempt, sent, latency_ms)
        return sent

    def _signed_headers(self, secrets: EndpointSecrets, event_id: str, body: str) -> dict[str, str]:
        now = datetime.now(UTC)
        signatures = []
        for sealed in (secrets.secret_sealed, secrets.previous_secret_sealed):
            secret = open_secret(self.token_secret, secrets.endpoint_id, sealed) if sealed else None
            if secret is not None:
                signatures.append(Webhook(secret).sign(event_id, now, body))
        if not signatures:
            raise UnopenableSecret
        return {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(signatures),
        }

    async def _record(
        self,
        secrets: EndpointSecrets,
        event: OutboundEventRow,
        attempt: Attempt,
        sent: Sent,
        latency_ms: int,
    ) -> None:
        last = not sent.delivered and attempt.retry_in_seconds is None
        status: event_deliveries.DeliveryStatus = (
            "delivered" if sent.delivered else "abandoned" if last else "failed"
        )
        row = NewAttempt(
            event_id=event.id,
            endpoint_id=secrets.endpoint_id,
            user_id=event.user_id,
            attempt=attempt.attempt,
            replay=attempt.replay,
            status=status,
            response_code=sent.response_code,
            latency_ms=latency_ms,
            error=sent.error,
            next_attempt_in_seconds=None if sent.delivered else attempt.retry_in_seconds,
        )
        # The status moves only when it must (a healthy endpoint's delivery is one INSERT).
        heals = sent.delivered and secrets.status == "failing"
        fails = not sent.delivered and attempt.mark_failing and secrets.status == "active"
        if not (heals or fails):
            await event_deliveries.insert_attempt(self.pool, row)
        else:
            async with self.pool.acquire() as connection, connection.transaction():
                await event_deliveries.insert_attempt(connection, row)
                await event_endpoints.set_status(
                    connection,
                    secrets.endpoint_id,
                    "active" if heals else "failing",
                    only_from="failing" if heals else "active",
                )
        log_event(
            logger,
            "EVENT_DELIVERY_ATTEMPT",
            endpoint_id=secrets.endpoint_id,
            event_id=event.id,
            attempt=attempt.attempt,
            status=status,
            response_code=sent.response_code,
            latency_ms=latency_ms,
        )


class UnopenableSecret(RuntimeError):
    """A token secret changed under the endpoint: nothing can sign."""

    def __init__(self) -> None:
        super().__init__("the endpoint's signing secret cannot be opened")


def _body(event: OutboundEventRow) -> str:
    """The event as the receiver gets it (Standard Webhooks signs these exact bytes)."""
    return json.dumps(payload(event), separators=(",", ":"), sort_keys=True)
