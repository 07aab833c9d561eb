"""Admin tier override `PUT /v1/admin/users/{user_id}/tier`.

No Stripe call: `subscription-<user>` records the tier in both tables and an audit row
(who = the API key's name) in one transaction; a NULL Stripe customer stays NULL.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.auth import AdminKey
from api.errors import ERROR_RESPONSES
from api.input_text import SafeText
from api.subscription_changes import (
    CHANGE_RESPONSES,
    Changes,
    SubscriptionChange,
    SubscriptionResponse,
)
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
    key: AdminKey,
    body: TierOverrideBody,
    changes: Changes,
) -> JSONResponse:
    request = AdminOverrideRequest(tier=body.tier, reason=body.reason, who=key.name)
    return await changes.run(
        SubscriptionChange(key.name, str(user_id), body.model_dump(), may_wait_for_payment=False),
        ADMIN_OVERRIDE,
        request,
    )
