"""A small receiver of onramp's events on 127.0.0.1 that verifies with standardwebhooks.

Plain asyncio (one request per connection), so it can be stopped to refuse connections
and started again on the same port. Its behaviour is set per test: answer 500 for the
next N requests, hold one user's requests for a while.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    event: dict[str, Any]
    signatures: str
    verified_by: list[int]  # indexes of `Receiver.secrets` that verify it


@dataclass
class Receiver:
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    fail_next: int = 0
    # Events (by webhook-id) answered 500 for as long as they are in the set.
    failing_ids: set[str] = field(default_factory=set)
    slow_users: dict[str, float] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def stop(self) -> None:
        """Close the port: deliveries are refused until `start` again."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def ids(self, user_id: str | None = None) -> list[str]:
        return [
            item.webhook_id
            for item in self.received
            if user_id is None or item.event["data"].get("user_id") == user_id
        ]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = _headers(head)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = await self._handle(headers, body)
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _handle(self, headers: dict[str, str], body: bytes) -> int:
        self.requests += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            return 500
        if headers.get("webhook-id") in self.failing_ids:
            return 500
        event = json.loads(body)
        delay = self.slow_users.get(event["data"].get("user_id", ""), 0.0)
        if delay:
            await asyncio.sleep(delay)
        verified = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
                verified.append(index)
            except WebhookVerificationError:
                pass
        if not verified:
            return 400
        self.received.append(
            Received(headers["webhook-id"], event, headers["webhook-signature"], verified)
        )
        return 204


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = (line.split(":", 1) for line in lines if ":" in line)
    return {name.strip().lower(): value.strip() for name, value in pairs}
