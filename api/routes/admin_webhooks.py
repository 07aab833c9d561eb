"""Operators' view of the webhook inbox (admin key): what arrived and what became of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.auth import AdminKey
from api.deps import Pool
from api.errors import ERROR_RESPONSES
from onramp.repositories import webhook_events

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)

InboxStatus = Literal["pending", "dispatched", "ignored", "failed", "orphaned"]


class WebhookEventSummary(BaseModel):
    event_id: str
    type: str
    livemode: bool
    account: str | None
    status: InboxStatus
    status_reason: str | None
    attempts: int
    last_error: str | None
    target_workflow_id: str | None
    received_at: datetime
    dispatched_at: datetime | None


class WebhookEventPage(BaseModel):
    data: list[WebhookEventSummary]
    has_more: bool


@router.get("/webhook-events", summary="List stored Stripe events, newest first")
async def list_webhook_events(
    _: AdminKey,
    pool: Pool,
    status: InboxStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[datetime | None, Query(description="received_at cursor")] = None,
) -> WebhookEventPage:
    rows = await webhook_events.list_summaries(pool, status=status, before=before, limit=limit + 1)
    events = [WebhookEventSummary.model_validate(row.model_dump()) for row in rows[:limit]]
    return WebhookEventPage(data=events, has_more=len(rows) > limit)
