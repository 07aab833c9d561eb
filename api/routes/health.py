"""Liveness and readiness of this API process.

Readiness is what this process needs to serve its routes: Postgres, answering within
its timeout. Temporal and the worker are deliberately not part of it: status reads and
the webhook inbox keep working without them, and a worker outage must not take every
API instance out of the load balancer. The whole system's state is
`GET /v1/admin/system` and the metrics of `api.system`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import Pool, Settings
from api.errors import ErrorResponse, error_response
from api.system import check_postgres

router = APIRouter(tags=["operations"])


class Check(BaseModel):
    ok: bool
    detail: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: this process can serve (Postgres answers)",
    response_model=Readiness,
    responses={503: {"model": ErrorResponse, "description": "Postgres does not answer"}},
)
async def readyz(settings: Settings, pool: Pool) -> JSONResponse:
    postgres = await check_postgres(pool, settings.temporal_rpc_timeout_seconds)
    checks = {"postgres": Check(ok=postgres.ok, detail=postgres.reason)}
    body = Readiness(status="ready" if postgres.ok else "not_ready", checks=checks).model_dump()
    if postgres.ok:
        return JSONResponse(body)
    return error_response(503, "not_ready", f"Not ready: postgres: {postgres.reason}", extra=body)
