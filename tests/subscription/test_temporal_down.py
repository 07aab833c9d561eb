"""Plan changes answer 503 while Temporal is unreachable; reads keep working (Postgres)."""

from __future__ import annotations

import socket
import uuid

import asyncpg

from api.app import create_app
from tests.support.harness import ADMIN_KEY, auth, make_api_settings, open_app_client


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_changes_answer_503_and_reads_work_without_temporal(
    database_url: str, db_pool: asyncpg.Pool
) -> None:
    user_id = uuid.uuid4()
    await db_pool.execute(
        "INSERT INTO users (id, email, username, status) VALUES ($1, $2, 'sam', 'active')",
        user_id,
        f"down-{user_id.hex[:10]}@example.com",
    )
    settings = make_api_settings(
        database_url, f"127.0.0.1:{_closed_port()}", "unused", temporal_rpc_timeout_seconds=1.0
    )
    async for api in open_app_client(create_app(settings)):
        read = await api.get(f"/v1/users/{user_id}/subscription", headers=auth())
        assert read.status_code == 200 and read.json()["tier"] == "free"
        upgrade = await api.post(
            f"/v1/users/{user_id}/subscription/upgrade", json={"tier": "pro"}, headers=auth()
        )
        assert upgrade.status_code == 503, upgrade.text
        assert upgrade.json()["error"]["code"] == "temporal_unavailable"
        admin = await api.put(
            f"/v1/admin/users/{user_id}/tier",
            json={"tier": "pro", "reason": "x"},
            headers=auth(ADMIN_KEY),
        )
        assert admin.status_code == 503
        bad = await api.post(
            f"/v1/users/{user_id}/subscription/upgrade", json={"tier": "gold"}, headers=auth()
        )
        assert bad.status_code == 422
