"""Apply the numbered SQL migrations in `onramp/migrations/`, once each, in order.

The runner holds a Postgres advisory lock on one dedicated connection for the whole run
(an advisory lock belongs to the session that took it), so two processes starting at
the same time never migrate at once: the second waits, then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from onramp.logging import log_event

logger = logging.getLogger(__name__)

# An arbitrary constant that names "onramp schema migrations" among advisory locks.
MIGRATION_LOCK_KEY = 0x6F6E72616D70
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The migrations on disk and the ones recorded in the database disagree."""


def load_migrations() -> list[Migration]:
    """The packaged migrations, ordered by their number."""
    found: list[Migration] = []
    for entry in resources.files("onramp.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_locked(connection)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await connection.close()


async def _apply_locked(connection: asyncpg.Connection) -> list[str]:
    await connection.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    recorded = {
        row["version"]: row
        for row in await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
    }
    applied: list[str] = []
    for migration in load_migrations():
        previous = recorded.get(migration.version)
        if previous is not None:
            if previous["checksum"] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.name} changed after it was applied; "
                    "write a new migration instead of editing an applied one"
                )
            continue
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        log_event(logger, "MIGRATION_APPLIED", migration=migration.name)
        applied.append(migration.name)
    return applied
