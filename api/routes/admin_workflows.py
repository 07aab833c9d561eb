"""Operator repairs of workflows: retry a checkout's failed provisioning (admin key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.auth import AdminKey
from api.deps import Temporal
from api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from api.operations import PROVISIONING_RETRY
from api.temporal_gateway import WorkflowNotFound
from workflows.contracts.checkout import (
    RETRY_PROVISIONING,
    RetryProvisioningRequest,
    RetryProvisioningResult,
)

router = APIRouter(prefix="/v1/admin/workflows", tags=["admin"], responses=ERROR_RESPONSES)


@router.post(
    "/{workflow_id}/retry-provisioning",
    status_code=202,
    summary="Retry the failed provisioning of a checkout (after the cause is fixed)",
    responses={
        404: {"model": ErrorResponse, "description": "No running checkout workflow"},
        409: {"model": ErrorResponse, "description": "Provisioning has not failed"},
        503: {
            "model": ErrorResponse,
            "description": "Temporal unreachable or no answer in time; with Retry-After",
        },
    },
)
async def retry_provisioning(
    workflow_id: Annotated[str, Path(pattern=r"^checkout-[0-9a-f\-]{36}$")],
    key: AdminKey,
    temporal: Temporal,
) -> RetryProvisioningResult:
    try:
        return await temporal.update(
            RETRY_PROVISIONING,
            RetryProvisioningRequest(who=key.name),
            workflow_id=workflow_id,
            deadline=temporal.quick_deadline(),
            operation=PROVISIONING_RETRY,
        )
    except WorkflowNotFound:
        raise ApiError(404, "workflow_not_found", f"No running {workflow_id}") from None
