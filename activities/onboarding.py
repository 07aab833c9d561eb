"""Database activities of Connect onboarding: one statement (or one transaction) each.

Tokens are derived here from their ids, so neither a token nor its link
`state` ever appears in workflow history.
"""

from __future__ import annotations

import base64
import logging

import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from onramp import onboarding, tokens
from onramp.logging import log_event
from onramp.repositories import onboarding_tokens
from onramp.repositories.connect_account_status import AccountFlags
from onramp.repositories.onboarding_tokens import OnboardingTokenRow
from workflows import errors
from workflows.contracts.common import UserRef
from workflows.contracts.onboarding import (
    ConnectAccountSnapshot,
    InsertOnboardingTokenInput,
    MarkTokenInProgressInput,
    OnboardingTokenRecord,
    OnboardingTokenStatus,
    RecordAccountStatusInput,
    RecordAccountStatusResult,
    TokenRef,
)

logger = logging.getLogger(__name__)


def token_record(row: OnboardingTokenRow) -> OnboardingTokenRecord:
    return OnboardingTokenRecord(
        token_id=row.token_id,
        user_id=row.user_id,
        status=row.status,
        expires_at=row.expires_at,
        has_state=row.has_state,
    )


def account_flags(snapshot: ConnectAccountSnapshot) -> AccountFlags:
    return AccountFlags(
        details_submitted=snapshot.details_submitted,
        charges_enabled=snapshot.charges_enabled,
        payouts_enabled=snapshot.payouts_enabled,
        requirements_due=snapshot.requirements_due,
        disabled_reason=snapshot.disabled_reason,
    )


class OnboardingActivities:
    def __init__(self, pool: asyncpg.Pool, token_secret: SecretStr) -> None:
        self.pool = pool
        self.token_secret = token_secret

    @activity.defn
    async def insert_onboarding_token(
        self, request: InsertOnboardingTokenInput
    ) -> OnboardingTokenRecord:
        token_hash = tokens.derive_token_hash(
            self.token_secret, tokens.CONNECT_ONBOARDING, request.token_id
        )
        row = await onboarding_tokens.insert_token(
            self.pool, request.token_id, request.user_id, token_hash, request.expires_at
        )
        log_event(
            logger, "ONBOARDING_TOKEN_ISSUED", user_id=request.user_id, token_id=request.token_id
        )
        return token_record(row)

    @activity.defn
    async def read_onboarding_token(self, request: TokenRef) -> OnboardingTokenRecord:
        row = await onboarding_tokens.get_token(self.pool, request.token_id)
        if row is None:
            raise ApplicationError(
                f"no onboarding token {request.token_id}",
                type=errors.ONBOARDING_TOKEN_NOT_FOUND,
                non_retryable=True,
            )
        return token_record(row)

    @activity.defn
    async def open_onboarding_tokens(self, request: UserRef) -> list[OnboardingTokenRecord]:
        rows = await onboarding_tokens.open_tokens(self.pool, request.user_id)
        return [token_record(row) for row in rows]

    @activity.defn
    async def mark_onboarding_token_in_progress(
        self, request: MarkTokenInProgressInput
    ) -> OnboardingTokenStatus:
        """Status, the state's digest, expiry and the sealed link in one statement;
        `ONBOARDING_TOKEN_GONE` if not open."""
        state_hash = tokens.derive_token_hash(
            self.token_secret, tokens.CONNECT_STATE, request.token_id
        )
        sealed = (
            base64.urlsafe_b64decode(request.sealed_link.encode("ascii"))
            if request.sealed_link is not None
            else None
        )
        previous = await onboarding_tokens.mark_in_progress(
            self.pool,
            request.token_id,
            state_hash,
            request.expires_at,
            sealed,
            request.link_expires_at,
        )
        if previous is None:
            raise ApplicationError(
                f"onboarding token {request.token_id} is no longer open",
                type=errors.ONBOARDING_TOKEN_GONE,
                non_retryable=True,
            )
        if previous == "pending":
            log_event(logger, "ONBOARDING_TOKEN_IN_PROGRESS", token_id=request.token_id)
        return previous

    @activity.defn
    async def expire_onboarding_token(self, request: TokenRef) -> bool:
        expired = await onboarding_tokens.expire_token(self.pool, request.token_id)
        if expired:
            log_event(logger, "ONBOARDING_TOKEN_EXPIRED", token_id=request.token_id)
        return expired

    @activity.defn
    async def record_onboarding_return(self, request: TokenRef) -> None:
        await onboarding_tokens.record_return(self.pool, request.token_id)

    @activity.defn
    async def record_connect_account_status(
        self, request: RecordAccountStatusInput
    ) -> RecordAccountStatusResult:
        snapshot = request.snapshot
        completed = await onboarding.record_account_status(
            self.pool,
            request.user_id,
            account_flags(snapshot),
            complete=snapshot.onboarding_complete,
        )
        log_event(
            logger, "CONNECT_ACCOUNT_STATUS", user_id=request.user_id,
            connect_account_id=snapshot.account_id,
            details_submitted=snapshot.details_submitted,
            charges_enabled=snapshot.charges_enabled,
            payouts_enabled=snapshot.payouts_enabled,
            completed_tokens=len(completed),
        )  # fmt: skip
        return RecordAccountStatusResult(completed_token_ids=completed)
