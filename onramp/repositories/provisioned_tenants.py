"""The `provisioned_tenants` table: the platform's tenant per checkout run, as the
provisioning hook answered it.

Keyed by the run, so a retry of the recording step finds its own row and a compensation
removes only what its own run recorded.
"""

from __future__ import annotations

from pydantic import BaseModel

from onramp.repositories import Db


class ProvisionedTenantRow(BaseModel):
    run_id: str
    user_id: str
    tenant_id: str
    dashboard_url: str | None


async def record_tenant(
    db: Db, *, run_id: str, user_id: str, tenant_id: str, dashboard_url: str | None
) -> None:
    """Insert, or overwrite with the platform's latest answer for the same run."""
    await db.execute(
        "INSERT INTO provisioned_tenants (run_id, user_id, tenant_id, dashboard_url) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO UPDATE "
        "SET tenant_id = EXCLUDED.tenant_id, dashboard_url = EXCLUDED.dashboard_url",
        run_id,
        user_id,
        tenant_id,
        dashboard_url,
    )


async def remove_tenant(db: Db, run_id: str) -> None:
    """Compensation: forget the run's tenant if it was recorded."""
    await db.execute("DELETE FROM provisioned_tenants WHERE run_id = $1", run_id)


async def tenant_of_run(db: Db, run_id: str) -> ProvisionedTenantRow | None:
    row = await db.fetchrow(
        "SELECT run_id, user_id::text, tenant_id, dashboard_url "
        "FROM provisioned_tenants WHERE run_id = $1",
        run_id,
    )
    return ProvisionedTenantRow.model_validate(dict(row)) if row else None
