"""The activities of `password-link-<user>`: whether the user gets a new set-password
link, and the new token in place of the earlier ones.

Both read or write onramp's own Postgres only and are idempotent: a retry of the
replacement finds its own token row (ON CONFLICT DO NOTHING) and revokes nothing more.
Only the token id travels; the hash is derived here and the link by the email activity.
"""

from __future__ import annotations

import logging

import asyncpg
from pydantic import SecretStr
from temporalio import activity

from onramp.logging import log_event
from onramp.passwords import SET_PASSWORD
from onramp.repositories import checkout_runs, password_tokens, users
from onramp.tokens import derive_token_hash
from workflows.contracts.common import UserRef
from workflows.contracts.password_link import PasswordLinkTarget, ReplacePasswordTokenInput

logger = logging.getLogger(__name__)


class PasswordLinkActivities:
    def __init__(self, pool: asyncpg.Pool, token_secret: SecretStr, ttl_seconds: int) -> None:
        self.pool = pool
        self.token_secret = token_secret
        self.ttl_seconds = ttl_seconds

    @activity.defn
    async def password_link_target(self, request: UserRef) -> PasswordLinkTarget:
        """Eligible: the user's latest checkout is paid and provisioned, no password yet."""
        user = await users.get_user(self.pool, request.user_id)
        if user is None:
            return PasswordLinkTarget(eligible=False, reason="no_user")
        if user.password_set_at is not None:
            return PasswordLinkTarget(eligible=False, reason="password_set")
        run = await checkout_runs.latest_run(self.pool, request.user_id)
        if run is None or run.payment_state != "paid":
            return PasswordLinkTarget(eligible=False, reason="not_paid")
        if run.password_state == "set":  # noqa: S105 - a state, not a secret
            return PasswordLinkTarget(eligible=False, reason="password_set")
        if run.provisioning_state != "completed":
            return PasswordLinkTarget(eligible=False, reason="not_provisioned")
        return PasswordLinkTarget(eligible=True, run_id=run.run_id, ttl_seconds=self.ttl_seconds)

    @activity.defn
    async def replace_password_token(self, request: ReplacePasswordTokenInput) -> None:
        token_hash = derive_token_hash(self.token_secret, SET_PASSWORD, request.token_id)
        async with self.pool.acquire() as connection, connection.transaction():
            await password_tokens.insert_token(
                connection,
                token_id=request.token_id,
                user_id=request.user_id,
                run_id=request.run_id,
                purpose=SET_PASSWORD,
                token_hash=token_hash,
                ttl_seconds=request.ttl_seconds,
            )
            await password_tokens.revoke_other_tokens(
                connection,
                user_id=request.user_id,
                purpose=SET_PASSWORD,
                keep_token_id=request.token_id,
            )
        log_event(
            logger, "PASSWORD_TOKEN_REPLACED", user_id=request.user_id, token_id=request.token_id
        )
