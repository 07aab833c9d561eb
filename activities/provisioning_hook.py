"""onramp's side of the provisioning hook: the user's email for the platform, and the
platform's tenant recorded for the setup status (or removed by the compensation).

The hook's own activities (`provision_customer`, `deprovision_customer`) run in the
platform's worker (workflows/contracts/provisioning_hook.py); these are Postgres steps.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from onramp.db import PERMANENT_DB_ERRORS
from onramp.logging import log_event
from onramp.repositories import provisioned_tenants, users
from workflows import errors
from workflows.contracts.common import UserRef
from workflows.contracts.provisioning_hook import (
    CustomerContact,
    RecordProvisionedTenantInput,
    RemoveProvisionedTenantInput,
)

logger = logging.getLogger(__name__)

MAX_TENANT_ID = 200
MAX_DASHBOARD_URL = 2000


def result_problem(tenant_id: str, dashboard_url: str | None) -> str | None:
    """Why the platform's answer cannot be recorded, None when it can."""
    if not tenant_id.strip() or len(tenant_id) > MAX_TENANT_ID:
        return f"tenant_id must be 1 to {MAX_TENANT_ID} characters"
    if dashboard_url is None:
        return None
    parts = urlsplit(dashboard_url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or any(c.isspace() for c in dashboard_url)
        or len(dashboard_url) > MAX_DASHBOARD_URL
    ):
        return "dashboard_url must be an http(s) URL"
    return None


class ProvisioningHookActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def customer_contact(self, request: UserRef) -> CustomerContact:
        user = await users.get_user(self.pool, request.user_id)
        return CustomerContact(email=user.email if user is not None else None)

    @activity.defn
    async def record_provisioned_tenant(self, request: RecordProvisionedTenantInput) -> None:
        problem = result_problem(request.tenant_id, request.dashboard_url)
        if problem is not None:
            raise ApplicationError(
                f"provisioning step platform refused: the platform's answer: {problem}",
                {"step": "platform"},
                type=errors.PROVISIONING_REFUSED,
                non_retryable=True,
            )
        try:
            await provisioned_tenants.record_tenant(
                self.pool,
                run_id=request.run_id,
                user_id=request.user_id,
                tenant_id=request.tenant_id,
                dashboard_url=request.dashboard_url,
            )
        except PERMANENT_DB_ERRORS as error:
            raise ApplicationError(
                f"provisioning step platform refused: {error}",
                {"step": "platform"},
                type=errors.PROVISIONING_REFUSED,
                non_retryable=True,
            ) from None
        log_event(logger, "TENANT_RECORDED", user_id=request.user_id, tenant_id=request.tenant_id)

    @activity.defn
    async def remove_provisioned_tenant(self, request: RemoveProvisionedTenantInput) -> None:
        await provisioned_tenants.remove_tenant(self.pool, request.run_id)
        log_event(logger, "TENANT_REMOVED", run_id=request.run_id)
