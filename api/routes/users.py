"""Signup (`POST /v1/users`) and the user profile (`GET /v1/users/{user_id}`).

Signup runs as the workflow `signup-<user id>`; this route starts it (or finds it, for
a retried request) and waits a few seconds for its result: 201 with the user, or 202
with a status URL when it takes longer (the workflow has started, so it goes on). A
start Temporal does not confirm in time is a 503 with Retry-After; the retry with the
same Idempotency-Key names the same user and workflow. The answer is read from Postgres.
"""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import ClientKey
from api.deadlines import Deadline
from api.deps import Pool, Settings, Temporal
from api.errors import ERROR_RESPONSES, MALFORMED_BODY_RESPONSE, ApiError, ErrorResponse
from api.idempotency import Answer, Idempotency
from api.input_text import EmailAddress, SafeText
from api.operations import SIGNUP as SIGNUP_OPERATION
from api.temporal_gateway import OperationPending, WorkflowNotFound
from onramp.repositories import users
from onramp.repositories.users import UserRow
from workflows.contracts.signup import SIGNUP, SignupInput, signup_workflow_id

router = APIRouter(prefix="/v1/users", tags=["users"], responses=ERROR_RESPONSES)


class SignupRequest(BaseModel):
    # Checked and normalised by email-validator; stored lower-cased (users.normalize_email)
    # so that one mailbox is one user whatever the case it is typed in.
    email: EmailAddress
    username: SafeText = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    payouts: bool = Field(default=False, description="the user will receive payouts (Connect)")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return users.normalize_email(value)


class UserResponse(BaseModel):
    """The user row as clients see it (two fields renamed, the generations left out)."""

    id: str = Field(validation_alias="user_id")
    email: str
    username: str
    status: Literal["signing_up", "active"]
    tier: str
    payouts: bool = Field(validation_alias="wants_payouts")
    stripe_customer_id: str | None
    connect_account_id: str | None


class SignupPending(BaseModel):
    id: str
    status: Literal["signing_up"]
    workflow_id: str
    status_url: str


def _user_response(user: UserRow) -> UserResponse:
    return UserResponse.model_validate(user, from_attributes=True)


def _pending(user_id: str) -> SignupPending:
    return SignupPending(
        id=user_id,
        status="signing_up",
        workflow_id=signup_workflow_id(user_id),
        status_url=f"/v1/users/{user_id}",
    )


@router.post(
    "",
    status_code=201,
    summary="Sign a user up: profile, then Stripe customer, then Connect account",
    responses={
        201: {"model": UserResponse},
        202: {"model": SignupPending, "description": "Still running; poll status_url"},
        400: MALFORMED_BODY_RESPONSE,
        409: {"model": ErrorResponse, "description": "Email taken, or same key in flight"},
        502: {"model": ErrorResponse, "description": "Signup failed and was undone"},
        503: {
            "model": ErrorResponse,
            "description": "Temporal unreachable or did not confirm the start in time "
            "(retry with the same Idempotency-Key); with Retry-After",
        },
    },
)
async def sign_up(
    request: SignupRequest,
    key: ClientKey,
    settings: Settings,
    pool: Pool,
    temporal: Temporal,
    idempotency: Idempotency,
) -> JSONResponse:
    user_id = idempotency.id_for(key.name)
    # A 202 needs the start confirmed, so the start may take the RPC timeout even when
    # the configured wait for the result is shorter.
    answer_by = Deadline.after(settings.signup_wait_seconds)
    deadline = Deadline.after(
        max(settings.signup_wait_seconds, settings.temporal_rpc_timeout_seconds)
    )

    async def handler() -> Answer:
        existing = await users.get_user_by_email(pool, request.email)
        if existing is not None and existing.user_id != user_id:
            raise ApiError(409, "email_taken", "A user with this email already exists")
        if existing is not None and existing.status == "active":
            # A retry of a signup that finished after its first request gave up.
            return Answer(201, _user_response(existing).model_dump())
        return await _run_signup(request, user_id, settings, temporal, pool, deadline, answer_by)

    return await idempotency.run(key.name, request.model_dump(), deadline, handler)


async def _run_signup(
    request: SignupRequest,
    user_id: str,
    settings: Settings,
    temporal: Temporal,
    pool: Pool,
    deadline: Deadline,
    answer_by: Deadline,
) -> Answer:
    workflow_id = signup_workflow_id(user_id)
    handle = await temporal.start_workflow(
        SIGNUP,
        SignupInput(
            user_id=user_id,
            email=request.email,
            username=request.username,
            payouts=request.payouts,
            stripe_customer=settings.signup_stripe_customer,
        ),
        workflow_id=workflow_id,
        user_id=user_id,
        task_queue=settings.temporal_task_queue,
        deadline=deadline,
        operation=SIGNUP_OPERATION,
    )
    try:
        await temporal.result(handle, deadline=answer_by, operation=SIGNUP_OPERATION)
    except OperationPending:
        return Answer(202, _pending(user_id).model_dump())
    user = await users.get_user(pool, user_id)
    if user is None:  # pragma: no cover - the workflow completed, so the row exists
        raise ApiError(502, "signup_failed", "Signup finished but the user is missing")
    return Answer(201, _user_response(user).model_dump())


@router.get(
    "/{user_id}",
    summary="A user's profile and tier",
    response_model=UserResponse,
    responses={
        202: {
            "model": SignupPending,
            "description": "Signup accepted, profile not written yet (worker busy or down)",
        },
        404: {"model": ErrorResponse},
        503: {"model": ErrorResponse, "description": "Temporal unreachable; with Retry-After"},
    },
)
async def get_user(
    user_id: uuid.UUID, _: ClientKey, pool: Pool, temporal: Temporal
) -> JSONResponse:
    uid = str(user_id)
    user = await users.get_user(pool, uid)
    if user is not None:
        return JSONResponse(_user_response(user).model_dump())
    # A 202 from signup hands out this URL before the workflow's first activity has
    # written the profile; until then the running workflow is the only trace.
    if await _signup_running(temporal, uid):
        return JSONResponse(_pending(uid).model_dump(), status_code=202)
    raise ApiError(404, "user_not_found", f"No user {user_id}")


async def _signup_running(temporal: Temporal, user_id: str) -> bool:
    try:
        return await temporal.is_running(signup_workflow_id(user_id))
    except WorkflowNotFound:
        return False
