"""Admin tier override `PUT /v1/admin/users/{user_id}/tier` (SPEC 3.4, admin key).

No Stripe call: `subscription-<user>` records the tier in both tables and an audit row
(who = the API key's name) in one transaction; a NULL Stripe customer stays NULL.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import AdminKey
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES
from api.idempotency import Answer, run_once
from api.input_text import SafeText
from api.routes.subscriptions import (
    CHANGE_RESPONSES,
    SubscriptionResponse,
    run_update,
    subscription_deadline,
    subscription_response,
    update_id_for,
)
from api.user_guard import require_active_user
from workflows.contracts.common import Tier
from workflows.contracts.subscription import ADMIN_OVERRIDE, AdminOverrideRequest

router = APIRouter(prefix="/v1/admin/users", tags=["admin"], responses=ERROR_RESPONSES)


class TierOverrideBody(BaseModel):
    tier: Tier
    # Not blank; no control, zero-width or bidi-override character (NUL included:
    # Postgres text cannot hold one), since the audit shows it to people.
    reason: SafeText = Field(min_length=1, max_length=500, pattern=r"^.*\S.*$")


@router.put(
    "/{user_id}/tier",
    summary="Set a user's tier by hand (audited; holds until the next change through Stripe)",
    response_model=SubscriptionResponse,
    responses=CHANGE_RESPONSES,
)
async def override_tier(
    user_id: uuid.UUID,
    body: TierOverrideBody,
    key: AdminKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    uid = str(user_id)
    deadline = subscription_deadline(settings)

    async def handler() -> Answer:
        await require_active_user(pool, uid)
        request = AdminOverrideRequest(tier=body.tier, reason=body.reason, who=key.name)
        update_id = update_id_for(key.name, idempotency_key)
        await run_update(temporal, settings, uid, ADMIN_OVERRIDE, request, update_id, deadline)
        return Answer(200, (await subscription_response(pool, uid)).model_dump(mode="json"))

    return await run_once(
        pool,
        client_name=key.name,
        key=idempotency_key,
        route="PUT /v1/admin/users/{user_id}/tier",
        body={"user_id": uid, **body.model_dump()},
        handler=handler,
        deadline=deadline,
    )
