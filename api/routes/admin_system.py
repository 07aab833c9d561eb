"""`GET /v1/admin/system` (admin key): the whole system's state, each component with a
reason. Always 200 when the API can answer: the body says what is wrong."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import AdminKey
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES
from api.system import SystemStatus, system_status

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


@router.get(
    "/system",
    summary="Postgres, Temporal, worker pollers per task queue, webhook inbox lag, stuck checkouts",
)
async def get_system_status(
    _: AdminKey, settings: Settings, pool: Pool, temporal: Temporal
) -> SystemStatus:
    return await system_status(settings, pool, temporal)
