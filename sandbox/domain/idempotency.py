"""Stripe's idempotency layer for POST requests, per API key.

- same key + same endpoint and params: the first response is replayed
  (`Idempotent-Replayed: true`), errors included once the endpoint began executing;
- same key, other params or endpoint: 400 `idempotency_error`;
- same key while the first request still runs: 409, `Stripe-Should-Retry: true`;
- keys are forgotten 24 h of *sandbox* time after first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.domain.errors import StripeError

TTL_SECONDS = 24 * 60 * 60


@dataclass(slots=True)
class Entry:
    fingerprint: str
    created: int
    request_id: str
    status: int | None = None
    body: bytes = b""
    object_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    """Headers the first answer carried beyond the usual ones (a saved 500's
    `Stripe-Should-Retry: false`), sent again with every replay."""


def fingerprint(method: str, path: str, pairs: list[tuple[str, str]]) -> str:
    """What must match for a replay: the endpoint and the exact parameters."""
    return f"{method} {path}?" + "&".join(f"{k}={v}" for k, v in sorted(pairs))


class IdempotencyStore:
    """Saved responses keyed by `(api key, idempotency key)`."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        self.replays = 0

    def begin(self, api_key: str, key: str, print_: str, now: int, request_id: str) -> Entry | None:
        """Claim `key` for a new request, or return the saved entry to replay.

        Raises the 409 or 400 Stripe answers for an in-flight or mismatched key.
        """
        entry = self.entries.get((api_key, key))
        if entry is not None and now - entry.created >= TTL_SECONDS:
            del self.entries[(api_key, key)]
            entry = None
        if entry is None:
            self.entries[(api_key, key)] = Entry(print_, now, request_id)
            return None
        if entry.status is None:
            raise StripeError(
                409,
                "idempotency_error",
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                f"going through): {key}. Please try again later.",
                code="idempotency_key_in_use",
                headers={"Stripe-Should-Retry": "true"},
            )
        if entry.fingerprint != print_:
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with. Try using a key other than "
                f"'{key}' if you meant to execute a different request.",
            )
        self.replays += 1
        return entry

    def finish(
        self,
        api_key: str,
        key: str,
        status: int,
        body: bytes,
        object_id: str | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        entry = self.entries.get((api_key, key))
        if entry is not None:
            entry.status = status
            entry.body = body
            entry.object_id = object_id
            entry.headers = dict(headers or {})

    def abandon(self, api_key: str, key: str) -> None:
        """The request never began executing (validation failed): keep nothing."""
        entry = self.entries.get((api_key, key))
        if entry is not None and entry.status is None:
            del self.entries[(api_key, key)]

    def prune(self, now: int) -> None:
        expired = [
            k
            for k, e in self.entries.items()
            if e.status is not None and now - e.created >= TTL_SECONDS
        ]
        for k in expired:
            del self.entries[k]

    def snapshot(self) -> list[Any]:
        return [
            [
                api_key,
                key,
                e.fingerprint,
                e.created,
                e.request_id,
                e.status,
                e.body.decode(),
                e.object_id,
                e.headers,
            ]
            for (api_key, key), e in self.entries.items()
            if e.status is not None
        ]

    def restore(self, rows: list[Any]) -> None:
        self.entries = {}
        for row in rows:
            # State files written before saved headers existed have eight columns.
            api_key, key, print_, created, request_id, status, body, object_id = row[:8]
            headers = dict(row[8]) if len(row) > 8 else {}
            self.entries[(api_key, key)] = Entry(
                print_, created, request_id, status, body.encode(), object_id, headers
            )

    def clear(self) -> None:
        self.entries = {}
        self.replays = 0
