"""`event_lanes`: which users of an endpoint retry in a lane, kept for a dispatcher that
starts from scratch (real Postgres)."""

from __future__ import annotations

import uuid

import asyncpg

from onramp.repositories import event_endpoints, event_lanes


async def _endpoint(pool: asyncpg.Pool) -> str:
    endpoint_id = f"ep_{uuid.uuid4().hex}"
    await event_endpoints.insert_endpoint(
        pool,
        endpoint_id=endpoint_id,
        url="https://example.com/hooks",
        event_types=["*"],
        description="",
        secret_sealed=b"sealed",
        dispatch_cursor=0,
    )
    return endpoint_id


async def test_a_lane_closes_only_when_it_drained_its_last_hand_over(
    db_pool: asyncpg.Pool,
) -> None:
    endpoint = await _endpoint(db_pool)
    await event_lanes.open_lanes(db_pool, endpoint, {"alice": 1, "bob": 2})
    await event_lanes.open_lanes(db_pool, endpoint, {"alice": 3})
    await event_lanes.open_lanes(db_pool, endpoint, {"bob": 1})  # a repeated older one
    assert await event_lanes.lanes_of(db_pool, endpoint) == {"alice": 3, "bob": 2}

    await event_lanes.close_lanes(db_pool, endpoint, {"alice": 1, "bob": 2})
    assert await event_lanes.lanes_of(db_pool, endpoint) == {"alice": 3}
    await event_lanes.close_lanes(db_pool, endpoint, {"alice": 3})
    assert await event_lanes.lanes_of(db_pool, endpoint) == {}


async def test_lanes_of_a_deleted_endpoint_are_not_recorded(db_pool: asyncpg.Pool) -> None:
    endpoint = await _endpoint(db_pool)
    await event_lanes.open_lanes(db_pool, endpoint, {"alice": 1})
    assert await event_endpoints.delete_endpoint(db_pool, endpoint)
    await event_lanes.open_lanes(db_pool, endpoint, {"alice": 2})  # no error
    assert await event_lanes.lanes_of(db_pool, endpoint) == {}
    assert (
        await db_pool.fetchval("SELECT count(*) FROM event_lanes WHERE endpoint_id = $1", endpoint)
        == 0
    )
