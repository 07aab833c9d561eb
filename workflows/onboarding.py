"""Connect onboarding: `onboarding-<user>`, the owner of a user's onboarding tokens.

A token is issued `pending` (update `issue_token`). Each open of
the service's link is an update (`open_link`) that ensures the Express account (the
shared ensure step), creates a fresh Stripe account link under its own idempotency key,
and only then moves the token to `in_progress` with its state and expiry — so a Stripe
outage answers 502 and leaves the token `pending`, never stuck.

Completion is decided on the re-read account (`details_submitted` and every
capability the platform configures `active`), triggered by `account.updated`, by the
user's return from Stripe, or by polling while a token is in progress. Webhooks are the
primary signal, so polling backs off: the first re-read after `poll_seconds`, then each
quiet one doubles the wait up to `poll_max_seconds` (minutes at first, then hours); a
user who opens the link or comes back starts it over. Tokens expire by timer.

A Stripe error never ends the run: a re-read that Stripe refuses (an outage longer than
the read's retries, a 401/403 after a key rotation, a 400) is recorded as the stuck step
in the `status` query and tried again with capped backoff, and the run stays open until
it succeeds. A run ends only when no token is open, no re-read is owed and every
handler has finished; `account.updated` after that starts a new run by
signal-with-start, which re-reads and records the flags.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

from workflows import failures, onboarding_state, policies
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal, UserRef
from workflows.contracts.onboarding import (
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    ONBOARDING_RETURNED_UPDATE,
    ONBOARDING_WORKFLOW,
    OPEN_ONBOARDING_LINK_UPDATE,
    AccountRef,
    ConnectAccountSnapshot,
    InsertOnboardingTokenInput,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
    MarkTokenInProgressInput,
    OnboardingReturnedInput,
    OnboardingTokenRecord,
    OnboardingTokenView,
    OnboardingWorkflowInput,
    OnboardingWorkflowStatus,
    OpenOnboardingLinkInput,
    OpenOnboardingLinkResult,
    RecordAccountStatusInput,
    RecordAccountStatusResult,
    StuckStep,
    TokenRef,
)
from workflows.ensure import read_user
from workflows.local_steps import database_step, stripe_read_step
from workflows.onboarding_links import OnboardingLinks
from workflows.onboarding_state import Token

with workflow.unsafe.imports_passed_through():
    from activities.onboarding import OnboardingActivities
    from activities.stripe_connect import StripeConnectActivities

STRIPE_READ: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": policies.RETRY,
}
_MAX_EVENT_IDS = 500


@workflow.defn(name=ONBOARDING_WORKFLOW)
class OnboardingWorkflow(OnboardingLinks):
    @workflow.init
    def __init__(self, request: OnboardingWorkflowInput) -> None:
        self._user_id = request.user_id
        self._continue_after = max(request.continue_after, 1)
        self._handled = 0
        self._poll_first = timedelta(seconds=request.poll_seconds)
        self._poll_max = max(timedelta(seconds=request.poll_max_seconds), self._poll_first)
        self._poll = self._poll_first
        self._stuck: StuckStep | None = None
        self._tokens: onboarding_state.Tokens = {}
        # Carried across continue-as-new; the open tokens are re-read from Postgres.
        self._account_id: str | None = request.account_id
        self._applied_events: list[str] = list(request.applied_event_ids)
        self._snapshot: ConnectAccountSnapshot | None = None
        self._recheck = request.recheck
        self._wake = False
        self._next_poll: datetime | None = None
        self._lock = asyncio.Lock()

    # --- queries, signals, updates ----------------------------------------------------

    @workflow.query
    def status(self) -> OnboardingWorkflowStatus:
        return OnboardingWorkflowStatus(
            user_id=self._user_id,
            account_id=self._account_id,
            tokens=[
                OnboardingTokenView(token_id=token_id, status=t.status, expires_at=t.expires_at)
                for token_id, t in self._tokens.items()
            ],
            last_snapshot=self._snapshot,
            applied_event_ids=list(self._applied_events),
            stuck=self._stuck,
            next_poll_at=self._next_poll,
            poll_interval_seconds=self._poll.total_seconds() if self._next_poll else None,
            handled=self._handled,
        )

    @workflow.signal(name=STRIPE_EVENT_SIGNAL)
    def stripe_event(self, event: StripeEventSignal) -> None:
        """A trigger only: the account is re-read before anything is recorded."""
        if event.event_id in self._applied_events:
            return
        self._handled += 1
        self._applied_events.append(event.event_id)
        del self._applied_events[:-_MAX_EVENT_IDS]
        if event.type.startswith("account."):
            # The event's account id is not trusted: only the account saved on the
            # user's row is re-read (an event cannot point the run at another one).
            self._recheck = True

    @workflow.update(name=ISSUE_ONBOARDING_TOKEN_UPDATE)
    async def issue_token(self, request: IssueOnboardingTokenInput) -> IssueOnboardingTokenResult:
        self._handled += 1
        async with self._lock:
            record: OnboardingTokenRecord = await database_step(
                OnboardingActivities.insert_onboarding_token,
                InsertOnboardingTokenInput(
                    token_id=request.token_id,
                    user_id=self._user_id,
                    expires_at=workflow.now() + timedelta(seconds=request.ttl_seconds),
                ),
            )
            onboarding_state.revoke_other_pending(self._tokens, request.token_id)
            self._tokens[request.token_id] = Token(record.status, record.expires_at)
            self._poll_first = timedelta(seconds=request.poll_seconds)
            self._poll_max = max(timedelta(seconds=request.poll_max_seconds), self._poll_first)
            self._wake = True
            return IssueOnboardingTokenResult(
                token_id=record.token_id, expires_at=record.expires_at
            )

    @workflow.update(name=OPEN_ONBOARDING_LINK_UPDATE)
    async def open_link(self, request: OpenOnboardingLinkInput) -> OpenOnboardingLinkResult:
        self._handled += 1
        async with self._lock:
            record = await self._open_token(request.token_id)
            reused = onboarding_state.reusable_link(
                self._tokens.get(request.token_id), workflow.now(), forced_new=request.new_link
            )
            if reused is not None:
                return reused
            account_id = await self._ensure_account_in_time()
            self._account_id = account_id
            link = await self._create_account_link(account_id, request)
            # Only now that the link exists does the token move.
            try:
                await database_step(
                    OnboardingActivities.mark_onboarding_token_in_progress,
                    MarkTokenInProgressInput(
                        token_id=request.token_id,
                        expires_at=record.expires_at,
                        sealed_link=link.sealed_url,
                        link_expires_at=link.expires_at,
                    ),
                )
            except failures.STEP_FAILURES as error:
                raise failures.as_update_failure(error, default_type=None) from None
            self._tokens[request.token_id] = Token(
                "in_progress",
                record.expires_at,
                sealed_link=link.sealed_url,
                link_expires_at=link.expires_at,
                account_id=account_id,
            )
            # The user is on Stripe's pages now: polling starts over at its shortest.
            self._restart_polling()
            self._wake = True
            return OpenOnboardingLinkResult(
                sealed_url=link.sealed_url, expires_at=link.expires_at, account_id=account_id
            )

    @workflow.update(name=ONBOARDING_RETURNED_UPDATE)
    async def account_returned(self, request: OnboardingReturnedInput) -> OnboardingWorkflowStatus:
        """The user came back from Stripe: "left or finished", so re-read the account now."""
        self._handled += 1
        async with self._lock:
            await database_step(
                OnboardingActivities.record_onboarding_return, TokenRef(token_id=request.token_id)
            )
            await self._sync_account()
            if onboarding_state.in_progress(self._tokens):
                # Not finished yet: the user may be back on Stripe's pages any moment,
                # so polling starts over (the run loop picks up the new deadline).
                self._restart_polling()
            # Either way the run loop looks again: a completed onboarding ends the run now
            # instead of at its next timer.
            self._wake = True
        return self.status()

    # --- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: OnboardingWorkflowInput) -> OnboardingWorkflowStatus:
        # OnrampUserId is set by every starter (the API's update-with-start and the
        # webhook router's signal-with-start), so the run does not upsert it.
        async with self._lock:
            await self._load_open_tokens()
        while True:
            await self._expire_due_tokens()
            await self._reread_if_due()
            if self._may_end():
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._may_end():
                    return self.status()
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._next_input())
            deadline = onboarding_state.next_deadline(self._tokens, self._next_poll, self._stuck)
            wait = deadline - workflow.now() if deadline is not None else None
            if wait is not None and wait <= timedelta(0):
                continue
            self._wake = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or self._recheck or self._should_continue_as_new(),
                    timeout=wait,
                )

    async def _reread_if_due(self) -> None:
        """Re-read the account when an event asked, a poll is due or a refused re-read
        is to be tried again; then schedule the next poll while a token is in progress."""
        now = workflow.now()
        poll_due = self._next_poll is not None and self._next_poll <= now
        retry_due = self._stuck is not None and self._stuck.next_attempt_at <= now
        if not (self._recheck or poll_due or retry_due):
            return
        self._recheck = False
        async with self._lock:
            read = await self._sync_account()
        if not onboarding_state.in_progress(self._tokens):
            self._next_poll = None
            return
        if poll_due and read:
            self._poll = onboarding_state.next_poll_interval(self._poll, self._poll_max)
        self._next_poll = workflow.now() + self._poll

    def _may_end(self) -> bool:
        return onboarding_state.may_end(self._tokens, recheck=self._recheck, stuck=self._stuck)

    def _next_input(self) -> OnboardingWorkflowInput:
        return OnboardingWorkflowInput(
            user_id=self._user_id,
            poll_seconds=self._poll_first.total_seconds(),
            poll_max_seconds=self._poll_max.total_seconds(),
            continue_after=self._continue_after,
            account_id=self._account_id,
            applied_event_ids=list(self._applied_events),
            recheck=self._recheck,
        )

    # --- steps --------------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        return (
            self._handled >= self._continue_after or workflow.info().is_continue_as_new_suggested()
        )

    def _restart_polling(self) -> None:
        self._poll = self._poll_first
        self._next_poll = workflow.now() + self._poll

    async def _load_open_tokens(self) -> None:
        """Pick up tokens a previous run left open, so their timers keep running."""
        records: list[OnboardingTokenRecord] = await database_step(
            OnboardingActivities.open_onboarding_tokens, UserRef(user_id=self._user_id)
        )
        for record in records:
            self._tokens.setdefault(record.token_id, Token(record.status, record.expires_at))
        if onboarding_state.in_progress(self._tokens) and self._next_poll is None:
            self._next_poll = workflow.now()

    async def _expire_due_tokens(self) -> None:
        due = onboarding_state.due_tokens(self._tokens, workflow.now())
        if not due:
            return
        async with self._lock:
            for token_id in due:
                await database_step(
                    OnboardingActivities.expire_onboarding_token, TokenRef(token_id=token_id)
                )
                # Expired here, or already closed (completed/revoked) in Postgres.
                if self._tokens[token_id].status in onboarding_state.OPEN:
                    self._tokens[token_id].status = "expired"

    async def _sync_account(self) -> bool:
        """Re-read the account from Stripe and record its flags (the caller holds the lock).

        False when Stripe refused the re-read: the step is recorded as stuck and tried
        again later, and nothing else changes.
        """
        if self._account_id is None:
            user = await read_user(self._user_id)
            self._account_id = user.connect_account_id
        if self._account_id is None:
            self._stuck = None
            return True
        try:
            read: ConnectAccountSnapshot = await stripe_read_step(
                StripeConnectActivities.retrieve_connect_account,
                AccountRef(account_id=self._account_id),
                STRIPE_READ,
            )
        except failures.STEP_FAILURES as error:
            self._record_stuck("retrieve_connect_account", error)
            return False
        if self._stuck is not None:
            workflow.logger.info(
                "Stripe answered the account re-read again after %d failures",
                self._stuck.failures,
            )
        self._stuck = None
        # The result is typed by the passed-through activity module; rebuild it as this
        # (sandboxed) module's model before nesting it in other models.
        snapshot = ConnectAccountSnapshot.model_validate(read.model_dump())
        if snapshot.account_id != self._account_id:
            # Ownership: only the account saved for the user is applied.
            workflow.logger.warning(
                "STRIPE_OWNERSHIP_MISMATCH",
                extra={
                    "user_id": self._user_id,
                    "object_id": snapshot.account_id,
                    "saved_account_id": self._account_id,
                },
            )
            return True
        self._snapshot = snapshot
        result: RecordAccountStatusResult = await database_step(
            OnboardingActivities.record_connect_account_status,
            RecordAccountStatusInput(user_id=self._user_id, snapshot=snapshot),
        )
        onboarding_state.mark_completed(
            self._tokens, result.completed_token_ids, snapshot.onboarding_complete
        )
        return True

    def _record_stuck(self, step: str, error: BaseException) -> None:
        """Keep the state, show the step to operators, and schedule the next attempt."""
        message = failures.failure_message(error)
        self._stuck = onboarding_state.stuck_after(
            self._stuck, step, failures.failure_type(error), message, workflow.now()
        )
        # The run loop must wait for the retry even when a handler recorded it.
        self._wake = True
        workflow.logger.warning(
            "%s failed (%d in a row), next attempt in %s: %s",
            step,
            self._stuck.failures,
            self._stuck.next_attempt_at - workflow.now(),
            message,
        )
