"""One repository module per table: every SQL statement naming a table lives in that
table's module (`onramp/repositories/<table>.py`), so one file says who reads and
writes it. Multi-table units of work call those modules; they hold no SQL of their own.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("activities", "api", "onramp", "worker", "workflows")

# Tables whose statements live outside `onramp/repositories/`, and why.
HOMES = {
    # The API's own Idempotency-Key records, read and written by the API alone.
    "api_idempotency_keys": "api/idempotency.py",
    # The migration runner's bookkeeping.
    "schema_migrations": "onramp/migrate.py",
}


def _tables() -> list[str]:
    sql = "\n".join(
        path.read_text() for path in (REPO_ROOT / "onramp" / "migrations").glob("*.sql")
    )
    return sorted(set(re.findall(r"CREATE TABLE (\w+)", sql)))


def _statements_on(table: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:FROM|INTO|UPDATE|JOIN)\s+{table}\b")


def _home(table: str) -> str:
    return HOMES.get(table, f"onramp/repositories/{table}.py")


def test_every_table_has_its_repository_module() -> None:
    tables = _tables()
    assert "users" in tables and "webhook_events" in tables
    for table in tables:
        assert (REPO_ROOT / _home(table)).is_file(), f"no module for table {table}"


def test_statements_on_a_table_live_in_its_module_only() -> None:
    tables = [*_tables(), *HOMES]
    misplaced: list[str] = []
    for top in PRODUCTION:
        for path in sorted((REPO_ROOT / top).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            text = path.read_text()
            misplaced.extend(
                f"{relative}: {table}"
                for table in tables
                if relative != _home(table) and _statements_on(table).search(text)
            )
    assert misplaced == []
