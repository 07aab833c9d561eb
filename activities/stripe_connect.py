"""Stripe activities of Connect onboarding: account links and re-reading the account.

Each open of the service's link is its own operation: the account link is created with
the key `<workflow id>/<update id>/account_link`. The refresh and return
URLs carry the token's `state`, derived here so it never enters workflow history; the
link itself (a bearer secret) leaves this activity sealed (`tokens.seal_text`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import stripe
from pydantic import SecretStr
from stripe.params import AccountLinkCreateParams
from temporalio import activity

from activities.stripe_gateway import call_stripe, idempotency_key, write_once
from onramp import tokens
from onramp.logging import log_event
from workflows.contracts.onboarding import (
    AccountLinkResult,
    AccountRef,
    ConnectAccountSnapshot,
    CreateAccountLinkInput,
)

logger = logging.getLogger(__name__)


DEFAULT_CONNECT_CAPABILITIES = ("card_payments", "transfers")


def snapshot_of(
    account: Any, required_capabilities: Sequence[str] = DEFAULT_CONNECT_CAPABILITIES
) -> ConnectAccountSnapshot:
    """The facts onboarding decides on, read from a re-fetched account; complete means
    every capability the platform configures is active (ConnectAccountSnapshot)."""
    if isinstance(account, stripe.StripeObject):
        account = account.to_dict()
    requirements = account.get("requirements") or {}
    due: list[str] = []
    for field in ("past_due", "currently_due"):
        for item in requirements.get(field) or []:
            if item not in due:
                due.append(str(item))
    return ConnectAccountSnapshot(
        account_id=account["id"],
        details_submitted=bool(account.get("details_submitted")),
        charges_enabled=bool(account.get("charges_enabled")),
        payouts_enabled=bool(account.get("payouts_enabled")),
        requirements_due=due,
        disabled_reason=requirements.get("disabled_reason"),
        capabilities={
            str(name): str(status) for name, status in (account.get("capabilities") or {}).items()
        },
        required_capabilities=list(required_capabilities),
    )


class StripeConnectActivities:
    def __init__(
        self,
        client: stripe.StripeClient,
        token_secret: SecretStr,
        *,
        connect_capabilities: Sequence[str] = DEFAULT_CONNECT_CAPABILITIES,
    ) -> None:
        self.stripe = client
        self.token_secret = token_secret
        self.connect_capabilities = tuple(connect_capabilities)

    @activity.defn
    async def create_account_link(self, request: CreateAccountLinkInput) -> AccountLinkResult:
        state = quote(
            tokens.derive_token(self.token_secret, tokens.CONNECT_STATE, request.token_id)
        )
        base = request.public_url.rstrip("/")
        params: AccountLinkCreateParams = {
            "account": request.account_id,
            "type": "account_onboarding",
            "refresh_url": f"{base}/v1/connect/refresh?state={state}",
            "return_url": f"{base}/v1/connect/return?state={state}",
        }

        async def create(key: str) -> stripe.AccountLink:
            return await self.stripe.v1.account_links.create_async(params, {"idempotency_key": key})

        async def nothing_to_find() -> stripe.AccountLink | None:
            # An account link can be neither listed nor retrieved, and a second one is
            # harmless (short-lived, single-use, no state at Stripe): after a saved 500
            # the link is simply made again under the next key.
            return None

        link = await write_once(
            "account_links.create",
            idempotency_key(request.workflow_id, request.operation_id, "account_link"),
            create,
            nothing_to_find,
        )
        log_event(
            logger, "CONNECT_ACCOUNT_LINK_CREATED", connect_account_id=request.account_id,
            token_id=request.token_id, workflow_id=request.workflow_id,
        )  # fmt: skip
        return AccountLinkResult(
            sealed_url=tokens.seal_text(self.token_secret, request.token_id, link.url),
            expires_at=datetime.fromtimestamp(link.expires_at, tz=UTC),
        )

    @activity.defn
    async def retrieve_connect_account(self, request: AccountRef) -> ConnectAccountSnapshot:
        account = await call_stripe(
            "accounts.retrieve", self.stripe.v1.accounts.retrieve_async(request.account_id)
        )
        return snapshot_of(account, self.connect_capabilities)
