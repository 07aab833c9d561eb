"""A receiver of onramp's outbound events for the bench runs, on 127.0.0.1.

Every request is verified with `standardwebhooks` against the endpoint's secret; each
verified one is recorded (webhook-id, event id, type, user, arrival time, what it was
answered). It can fail a share of the deliveries at random from a seed: half of those
are answered 500, half have their connection reset before any answer (the body read,
then an RST). `max_failures_per_event` caps how often one webhook-id is failed, so a
small smoke run stays within its time (the retry backoff starts at 5 s and doubles).

Plain asyncio, one request per connection (`Connection: close`), in the driver's event
loop: the bench reads what arrived directly, with no file in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Outcome = Literal["accepted", "answered 500", "connection reset"]
_HEAD_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    event_id: str
    type: str
    user_id: str | None
    at: float  # wall clock (time.time()), when the body had been read
    outcome: Outcome


@dataclass
class EventReceiver:
    """See the module docstring. `secret` is set once the endpoint exists (the admin API
    shows it at creation)."""

    failure_share: float = 0.0
    seed: int = 0
    max_failures_per_event: int | None = None
    secret: str | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    unverified: int = 0
    port: int = 0
    _rng: random.Random = field(init=False)
    _failed: Counter[str] = field(default_factory=Counter)
    _server: asyncio.Server | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, failure_share: float = 0.0, seed: int = 0, max_failures_per_event: int | None = None
    ) -> AsyncIterator[EventReceiver]:
        receiver = cls(failure_share, seed, max_failures_per_event)
        receiver._server = await asyncio.start_server(receiver._serve, "127.0.0.1", 0)
        receiver.port = receiver._server.sockets[0].getsockname()[1]
        try:
            yield receiver
        finally:
            receiver._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver._server.wait_closed(), 5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/onramp-events"

    def injected(self) -> Counter[Outcome]:
        """How many verified requests were answered each way."""
        return Counter(arrival.outcome for arrival in self.arrivals)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _HEAD_LIMIT:
                return
            headers = _headers(head)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            outcome = self._handle(headers, body)
            if outcome == "connection reset":
                _reset(writer)
                return
            status = {"accepted": "204 No Content", "answered 500": "500 Internal Server Error"}
            line = status.get(outcome or "", "400 Bad Request")
            writer.write(
                f"HTTP/1.1 {line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            ValueError,
        ):
            pass
        finally:
            writer.close()

    def _handle(self, headers: dict[str, str], body: bytes) -> Outcome | None:
        """Verify, decide the answer, record; None when the signature does not verify."""
        at = time.time()
        if self.secret is None:
            self.unverified += 1
            return None
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.unverified += 1
            return None
        event = json.loads(body)
        webhook_id = headers["webhook-id"]
        outcome: Outcome = "accepted"
        capped = (
            self.max_failures_per_event is not None
            and self._failed[webhook_id] >= self.max_failures_per_event
        )
        if not capped and self._rng.random() < self.failure_share:
            outcome = "answered 500" if self._rng.random() < 0.5 else "connection reset"
            self._failed[webhook_id] += 1
        data = event.get("data") or {}
        self.arrivals.append(
            Arrival(
                webhook_id=webhook_id,
                event_id=str(event.get("id")),
                type=str(event.get("type")),
                user_id=data.get("user_id"),
                at=at,
                outcome=outcome,
            )
        )
        return outcome


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of an answer (SO_LINGER 0), as a crashed receiver does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
