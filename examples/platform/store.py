"""The example platform's own database: one SQLite file shared by its receiver and its
worker (stdlib `sqlite3`, a connection per call, so several processes can use it).

`events` keeps each received event once, keyed by its `webhook-id`; `tenants` keeps each
tenant once, keyed by the provisioning request's idempotency key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    arrival INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    user_id TEXT,
    received_at TEXT NOT NULL,
    times_received INTEGER NOT NULL DEFAULT 1,
    event TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    idempotency_key TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    email TEXT,
    tier TEXT NOT NULL,
    billing_cycle TEXT,
    state TEXT NOT NULL DEFAULT 'provisioning',
    calls INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

TENANT_STATES = ("provisioning", "ready", "deprovisioned")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Store:
    """The platform's tables in the SQLite file at `path` (created when missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            # WAL: the receiver, the worker and a reader can use the file at once.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            yield connection
        finally:
            connection.close()

    # -- events ------------------------------------------------------------------------

    def record_event(self, webhook_id: str, event: dict[str, Any]) -> bool:
        """Keep a verified event; False (and only a count) when its id was seen."""
        data = event.get("data") or {}
        with self._connect() as connection:
            (times,) = connection.execute(
                "INSERT INTO events (webhook_id, type, user_id, received_at, event) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (webhook_id) "
                "DO UPDATE SET times_received = times_received + 1 RETURNING times_received",
                (webhook_id, event.get("type", ""), data.get("user_id"), _now(), json.dumps(event)),
            ).fetchone()
        return bool(times == 1)

    def events(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Every received event, in arrival order."""
        query = "SELECT * FROM events"
        query += " WHERE user_id = ? ORDER BY arrival" if user_id else " ORDER BY arrival"
        with self._connect() as connection:
            rows = connection.execute(query, (user_id,) if user_id else ()).fetchall()
        return [{**dict(row), "event": json.loads(row["event"])} for row in rows]

    # -- tenants -----------------------------------------------------------------------

    def reserve_tenant(self, request: dict[str, Any], new_tenant_id: str) -> dict[str, Any]:
        """The tenant of this request's idempotency key: made now with `new_tenant_id`,
        or the one made by an earlier call with the same key (counted in `calls`)."""
        now = _now()
        with self._connect() as connection:
            row = connection.execute(
                "INSERT INTO tenants (idempotency_key, tenant_id, user_id, email, tier, "
                "billing_cycle, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (idempotency_key) DO UPDATE SET calls = calls + 1 RETURNING *",
                (
                    request["idempotency_key"],
                    new_tenant_id,
                    request["user_id"],
                    request.get("email"),
                    request["tier"],
                    request.get("billing_cycle"),
                    now,
                    now,
                ),
            ).fetchone()
        return dict(row)

    def set_tenant_state(self, idempotency_key: str, state: str) -> None:
        """Move the key's tenant to `state`; nothing when the key is unknown."""
        assert state in TENANT_STATES, state
        with self._connect() as connection:
            connection.execute(
                "UPDATE tenants SET state = ?, updated_at = ? WHERE idempotency_key = ?",
                (state, _now(), idempotency_key),
            )

    def tenants(self, user_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT * FROM tenants"
        query += " WHERE user_id = ? ORDER BY rowid" if user_id else " ORDER BY rowid"
        with self._connect() as connection:
            rows = connection.execute(query, (user_id,) if user_id else ()).fetchall()
        return [dict(row) for row in rows]

    def tenant(self, tenant_id: str) -> dict[str, Any] | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT * FROM tenants WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        return None if row is None else dict(row)
