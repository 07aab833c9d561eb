"""Event endpoints (admin key): where onramp delivers its signed outbound events.

Create answers the `whsec_…` signing secret once; Postgres keeps it sealed. Rotating
answers the new one, and the old one keeps signing beside it for a day (receivers
verify any of the signatures). Pause, resume and replay reach the endpoint's
dispatcher workflow, which is started when missing (any of these calls repairs an
endpoint whose dispatcher could not be started at creation).

Endpoints are configuration the operator writes, so this module writes their rows
itself: a secret must never pass through a workflow's history.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, model_validator

from api.auth import AdminKey
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, MALFORMED_BODY_RESPONSE, ApiError, ErrorResponse
from api.temporal_gateway import TemporalGateway
from onramp.event_secrets import new_secret, seal_secret
from onramp.repositories import event_deliveries, event_endpoints, outbound_events
from onramp.repositories.event_deliveries import DeliveryStatus, EventDeliveryRow
from onramp.repositories.event_endpoints import EndpointStatus, EventEndpointRow
from onramp.settings import ApiSettings
from onramp.settings.values import HttpUrlStr
from workflows.contracts.common import ArgT, SignalRef
from workflows.contracts.event_delivery import (
    DISPATCH_REPLAY,
    DISPATCH_WAKE,
    DispatchInput,
    ReplayRange,
    Wake,
    event_dispatch_workflow_id,
)

router = APIRouter(prefix="/v1/admin/event-endpoints", tags=["admin"], responses=ERROR_RESPONSES)

SECRET_OVERLAP_SECONDS = 24 * 3600
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such endpoint"}
}
_TEMPORAL: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "Temporal unreachable or no answer in time"}
}
_BODY: dict[int | str, dict[str, Any]] = {400: MALFORMED_BODY_RESPONSE}
EndpointId = Annotated[str, Path(pattern=r"^ep_[0-9a-f]{32}$")]
EventType = Annotated[str, Field(pattern=r"^(\*|[a-z_]+\.[a-z_]+)$", max_length=100)]


class EndpointCreate(BaseModel):
    url: HttpUrlStr
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    description: str = Field(default="", max_length=500)


class Endpoint(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    status: EndpointStatus
    created_at: datetime
    status_changed_at: datetime
    previous_secret_expires_at: datetime | None

    @classmethod
    def of(cls, row: EventEndpointRow) -> Endpoint:
        return cls(
            id=row.endpoint_id,
            url=row.url,
            event_types=row.event_types,
            description=row.description,
            status=row.status,
            created_at=row.created_at,
            status_changed_at=row.status_changed_at,
            previous_secret_expires_at=row.previous_secret_until,
        )


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="the `whsec_…` signing secret: shown this once")


class EndpointList(BaseModel):
    data: list[Endpoint]


class Delivery(BaseModel):
    id: int
    event_id: str
    user_id: str | None
    attempt: int
    replay: bool
    status: DeliveryStatus
    response_code: int | None
    latency_ms: int | None
    error: str | None
    attempted_at: datetime
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, row: EventDeliveryRow) -> Delivery:
        return cls.model_validate({**row.model_dump(), "id": row.delivery_id})


class DeliveryPage(BaseModel):
    data: list[Delivery]
    has_more: bool


class ReplayRequest(BaseModel):
    """One event (`event_id`), or every event from `from_event_id` to `to_event_id`."""

    event_id: str | None = None
    from_event_id: str | None = None
    to_event_id: str | None = None

    @model_validator(mode="after")
    def _one_or_a_range(self) -> ReplayRequest:
        single = self.event_id is not None
        ranged = self.from_event_id is not None and self.to_event_id is not None
        if single == ranged or (not ranged and (self.from_event_id or self.to_event_id)):
            raise ValueError("give `event_id`, or both `from_event_id` and `to_event_id`")
        return self


class ReplayAccepted(BaseModel):
    first_sequence: int
    last_sequence: int


@router.post(
    "",
    status_code=201,
    summary="Create an endpoint (answers its secret once)",
    responses={**_BODY, **_TEMPORAL},
)
async def create_endpoint(
    body: EndpointCreate, _: AdminKey, pool: Pool, settings: Settings, temporal: Temporal
) -> EndpointWithSecret:
    endpoint_id = f"ep_{uuid.uuid4().hex}"
    secret = new_secret()
    row = await event_endpoints.insert_endpoint(
        pool,
        endpoint_id=endpoint_id,
        url=body.url,
        event_types=sorted(set(body.event_types)),
        description=body.description,
        secret_sealed=seal_secret(settings.onramp_token_secret, endpoint_id, secret),
        dispatch_cursor=await outbound_events.newest_sequence(pool),
    )
    try:
        await _signal_dispatcher(temporal, settings, endpoint_id, DISPATCH_WAKE, Wake())
    except ApiError:
        # Without its dispatcher nothing would be delivered, and the caller never saw
        # the secret: no endpoint, and the caller tries again.
        await event_endpoints.delete_endpoint(pool, endpoint_id)
        raise
    return EndpointWithSecret(**Endpoint.of(row).model_dump(), secret=secret)


@router.get("", summary="List endpoints")
async def list_endpoints(_: AdminKey, pool: Pool) -> EndpointList:
    rows = await event_endpoints.list_endpoints(pool)
    return EndpointList(data=[Endpoint.of(row) for row in rows])


@router.get("/{endpoint_id}", summary="One endpoint", responses=_NOT_FOUND)
async def get_endpoint(endpoint_id: EndpointId, _: AdminKey, pool: Pool) -> Endpoint:
    return Endpoint.of(await _existing(pool, endpoint_id))


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    summary="Delete an endpoint: nothing more is sent to it, and its attempts are dropped",
    responses=_NOT_FOUND,
)
async def delete_endpoint(endpoint_id: EndpointId, _: AdminKey, pool: Pool) -> None:
    # The dispatcher ends at its next read and each lane at its next attempt, when they
    # find the row gone; the secret goes with the row.
    if not await event_endpoints.delete_endpoint(pool, endpoint_id):
        raise _not_found(endpoint_id)


@router.post(
    "/{endpoint_id}/pause",
    summary="Stop delivering (events wait, none is lost)",
    responses=_NOT_FOUND,
)
async def pause_endpoint(endpoint_id: EndpointId, _: AdminKey, pool: Pool) -> Endpoint:
    row = await event_endpoints.set_status(pool, endpoint_id, "paused")
    if row is None:
        raise _not_found(endpoint_id)
    return Endpoint.of(row)


@router.post(
    "/{endpoint_id}/resume",
    summary="Deliver again, from where it stopped",
    responses={**_NOT_FOUND, **_TEMPORAL},
)
async def resume_endpoint(
    endpoint_id: EndpointId, _: AdminKey, pool: Pool, settings: Settings, temporal: Temporal
) -> Endpoint:
    row = await event_endpoints.set_status(pool, endpoint_id, "active", only_from="paused")
    row = row or await _existing(pool, endpoint_id)
    await _signal_dispatcher(temporal, settings, endpoint_id, DISPATCH_WAKE, Wake())
    return Endpoint.of(row)


@router.post(
    "/{endpoint_id}/rotate-secret",
    summary="A new signing secret (shown once); the old one signs too for 24 h",
    responses=_NOT_FOUND,
)
async def rotate_secret(
    endpoint_id: EndpointId, _: AdminKey, pool: Pool, settings: Settings
) -> EndpointWithSecret:
    secret = new_secret()
    row = await event_endpoints.rotate_secret(
        pool,
        endpoint_id,
        secret_sealed=seal_secret(settings.onramp_token_secret, endpoint_id, secret),
        overlap_seconds=SECRET_OVERLAP_SECONDS,
    )
    if row is None:
        raise _not_found(endpoint_id)
    return EndpointWithSecret(**Endpoint.of(row).model_dump(), secret=secret)


@router.get(
    "/{endpoint_id}/deliveries", summary="Delivery attempts, newest first", responses=_NOT_FOUND
)
async def list_deliveries(
    endpoint_id: EndpointId,
    _: AdminKey,
    pool: Pool,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(description="a delivery `id` cursor")] = None,
) -> DeliveryPage:
    await _existing(pool, endpoint_id)
    rows = await event_deliveries.list_for_endpoint(
        pool, endpoint_id, event_id=event_id, status=status, before=before, limit=limit + 1
    )
    return DeliveryPage(data=[Delivery.of(row) for row in rows[:limit]], has_more=len(rows) > limit)


@router.post(
    "/{endpoint_id}/replay",
    status_code=202,
    summary="Deliver events again",
    responses={
        **_BODY,
        404: {"model": ErrorResponse, "description": "No such endpoint or event"},
        **_TEMPORAL,
    },
)
async def replay(
    endpoint_id: EndpointId,
    body: ReplayRequest,
    _: AdminKey,
    pool: Pool,
    settings: Settings,
    temporal: Temporal,
) -> ReplayAccepted:
    await _existing(pool, endpoint_id)
    first_id = body.event_id or body.from_event_id
    last_id = body.event_id or body.to_event_id
    assert first_id is not None and last_id is not None
    first = await outbound_events.event_sequence(pool, first_id)
    last = await outbound_events.event_sequence(pool, last_id)
    if first is None or last is None:
        raise ApiError(404, "event_not_found", "No such event")
    if first > last:
        raise ApiError(422, "invalid_range", "`from_event_id` comes after `to_event_id`")
    wanted = ReplayRange(first_sequence=first, last_sequence=last)
    await _signal_dispatcher(temporal, settings, endpoint_id, DISPATCH_REPLAY, wanted)
    return ReplayAccepted(first_sequence=first, last_sequence=last)


async def _existing(pool: Pool, endpoint_id: str) -> EventEndpointRow:
    row = await event_endpoints.get_endpoint(pool, endpoint_id)
    if row is None:
        raise _not_found(endpoint_id)
    return row


def _not_found(endpoint_id: str) -> ApiError:
    return ApiError(404, "endpoint_not_found", f"No event endpoint {endpoint_id}")


async def _signal_dispatcher(
    temporal: TemporalGateway,
    settings: ApiSettings,
    endpoint_id: str,
    signal: SignalRef[ArgT],
    argument: ArgT,
) -> None:
    """Signal-with-start of the endpoint's dispatcher: it runs afterwards, either way."""
    await temporal.signal_with_start(
        signal,
        argument,
        start_input=DispatchInput(endpoint_id=endpoint_id),
        workflow_id=event_dispatch_workflow_id(endpoint_id),
        task_queue=settings.temporal_task_queue,
    )
