"""Provisioning activities of `checkout-<user>`: the workspace and the set-password token.

Each step is idempotent (a retry finds what the first attempt made) and has an undo
for the compensation of a permanently failed provisioning. Only token ids travel: the
token's hash is derived here, and the link inside the email send (the welcome email is
the one email activity's, `activities.email`), so no token or link reaches workflow
history, the outbox or a log.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from onramp.db import PERMANENT_DB_ERRORS
from onramp.logging import log_event
from onramp.passwords import SET_PASSWORD
from onramp.repositories import password_tokens, workspaces
from onramp.tokens import derive_token_hash
from workflows import errors
from workflows.contracts.checkout import IssuePasswordTokenInput, ProvisioningStepInput
from workflows.contracts.onboarding import TokenRef

logger = logging.getLogger(__name__)


def _refused(step: str, error: Exception) -> ApplicationError:
    return ApplicationError(
        f"provisioning step {step} refused: {error}",
        {"step": step},
        type=errors.PROVISIONING_REFUSED,
        non_retryable=True,
    )


class ProvisioningActivities:
    def __init__(self, pool: asyncpg.Pool, token_secret: SecretStr) -> None:
        self.pool = pool
        self.token_secret = token_secret

    @activity.defn
    async def create_workspace(self, request: ProvisioningStepInput) -> str:
        # The id derives from the run, so every retry of this step names the same row.
        workspace_id = _uuid_from(request.run_id)
        try:
            found = await workspaces.create_workspace(
                self.pool, workspace_id, request.user_id, request.run_id
            )
        except PERMANENT_DB_ERRORS as error:
            raise _refused("workspace", error) from None
        log_event(logger, "WORKSPACE_READY", user_id=request.user_id, workspace_id=found)
        return found

    @activity.defn
    async def delete_workspace(self, request: ProvisioningStepInput) -> None:
        await workspaces.delete_workspace(self.pool, request.user_id, request.run_id)
        log_event(logger, "WORKSPACE_REMOVED", user_id=request.user_id, run_id=request.run_id)

    @activity.defn
    async def issue_password_token(self, request: IssuePasswordTokenInput) -> None:
        token_hash = derive_token_hash(self.token_secret, SET_PASSWORD, request.token_id)
        try:
            await password_tokens.insert_token(
                self.pool,
                token_id=request.token_id,
                user_id=request.user_id,
                run_id=request.run_id,
                purpose=SET_PASSWORD,
                token_hash=token_hash,
                ttl_seconds=request.ttl_seconds,
            )
        except PERMANENT_DB_ERRORS as error:
            raise _refused("password_token", error) from None
        log_event(
            logger, "PASSWORD_TOKEN_ISSUED", user_id=request.user_id, token_id=request.token_id
        )

    @activity.defn
    async def revoke_password_token(self, request: TokenRef) -> None:
        await password_tokens.revoke_token(self.pool, request.token_id)


def _uuid_from(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"onramp:workspace:{name}"))
