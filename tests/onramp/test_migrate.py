"""Migrations apply once, in order, and never twice at the same time."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from onramp.migrate import apply_migrations, load_migrations


async def _fresh_database(admin_uri: str) -> str:
    name = f"onramp_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_uri)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return admin_uri.replace("/postgres?", f"/{name}?", 1)


async def test_migrations_apply_once(postgres_admin_uri: str) -> None:
    url = await _fresh_database(postgres_admin_uri)
    expected = [migration.name for migration in load_migrations()]
    assert expected and expected[0].startswith("0001_")
    assert await apply_migrations(url) == expected
    assert await apply_migrations(url) == []
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT name FROM schema_migrations ORDER BY version")
    finally:
        await connection.close()
    assert [row["name"] for row in rows] == expected


async def test_concurrent_runners_apply_each_migration_once(postgres_admin_uri: str) -> None:
    url = await _fresh_database(postgres_admin_uri)
    results = await asyncio.gather(*(apply_migrations(url) for _ in range(4)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(migration.name for migration in load_migrations())


async def test_schema_refuses_sentinels_and_duplicates(db_pool: asyncpg.Pool) -> None:
    user_id = uuid.uuid4()
    await db_pool.execute(
        "INSERT INTO users (id, email, username) VALUES ($1, $2, 'sam')",
        user_id,
        f"{user_id}@example.com",
    )
    for bad in ("admin_override_42", "", "cus"):
        try:
            await db_pool.execute(
                "UPDATE users SET stripe_customer_id = $2 WHERE id = $1", user_id, bad
            )
        except asyncpg.CheckViolationError:
            continue
        raise AssertionError(f"{bad!r} was accepted as a Stripe customer id")
    try:
        await db_pool.execute(
            "INSERT INTO users (id, email, username) VALUES ($1, $2, 'twin')",
            uuid.uuid4(),
            f"{user_id}@example.com",
        )
    except asyncpg.UniqueViolationError:
        pass
    else:
        raise AssertionError("a second user with the same email was accepted")
