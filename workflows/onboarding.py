"""Connect onboarding: `onboarding-<user>`, the owner of a user's onboarding tokens.

SPEC 3.2 / issue 17. A token is issued `pending` (update `issue_token`). Each open of
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
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import errors, policies
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal, UserRef
from workflows.contracts.onboarding import (
    ISSUE_ONBOARDING_TOKEN_UPDATE,
    ONBOARDING_RETURNED_UPDATE,
    ONBOARDING_WORKFLOW,
    OPEN_ONBOARDING_LINK_UPDATE,
    AccountLinkResult,
    AccountRef,
    ConnectAccountSnapshot,
    CreateAccountLinkInput,
    InsertOnboardingTokenInput,
    IssueOnboardingTokenInput,
    IssueOnboardingTokenResult,
    MarkTokenInProgressInput,
    OnboardingReturnedInput,
    OnboardingTokenRecord,
    OnboardingTokenStatus,
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
from workflows.ensure import ensure_connect_account, read_user
from workflows.local_steps import database_step, stripe_read_step

with workflow.unsafe.imports_passed_through():
    from activities.onboarding import OnboardingActivities
    from activities.stripe_connect import StripeConnectActivities

# An end user waits on the link: Stripe gets a bounded number of tries inside the
# update, then the user sees a 502 and the token stays `pending`.
LINK_BUDGET = timedelta(seconds=20)
STRIPE_LINK: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=10),
    "schedule_to_close_timeout": LINK_BUDGET,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=4),
        maximum_attempts=3,
        non_retryable_error_types=errors.NON_RETRYABLE,
    ),
}
STRIPE_READ: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(minutes=10),
    "retry_policy": policies.RETRY,
}
# A refused re-read is tried again after 1 min, then 2, 4, ... at most 30 min apart.
READ_RETRY_FIRST = timedelta(minutes=1)
READ_RETRY_MAX = timedelta(minutes=30)
_OPEN: tuple[OnboardingTokenStatus, ...] = ("pending", "in_progress")
_MAX_EVENT_IDS = 500
# An account link handed out within its life is handed out again instead of asking
# Stripe for another, while it has at least this long left (Stripe's links last about
# five minutes; the user needs a moment to follow the redirect).
LINK_REUSE_MARGIN = timedelta(seconds=60)


@dataclass
class _Token:
    status: OnboardingTokenStatus
    expires_at: datetime
    # The last account link of this token, sealed (never the URL itself), and its end.
    sealed_link: str | None = None
    link_expires_at: datetime | None = None
    account_id: str | None = None


@workflow.defn(name=ONBOARDING_WORKFLOW)
class OnboardingWorkflow:
    @workflow.init
    def __init__(self, request: OnboardingWorkflowInput) -> None:
        self._user_id = request.user_id
        self._continue_after = max(request.continue_after, 1)
        self._handled = 0
        self._poll_first = timedelta(seconds=request.poll_seconds)
        self._poll_max = max(timedelta(seconds=request.poll_max_seconds), self._poll_first)
        self._poll = self._poll_first
        self._stuck: StuckStep | None = None
        self._tokens: dict[str, _Token] = {}
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
            for token_id, token in self._tokens.items():
                if token_id != request.token_id and token.status == "pending":
                    token.status = "revoked"
            self._tokens[request.token_id] = _Token(record.status, record.expires_at)
            self._poll_first = timedelta(seconds=request.poll_seconds)
            self._poll_max = max(timedelta(seconds=request.poll_max_seconds), self._poll_first)
            self._wake = True
            return IssueOnboardingTokenResult(
                token_id=record.token_id, expires_at=record.expires_at
            )

    @workflow.update(name=OPEN_ONBOARDING_LINK_UPDATE)
    async def open_link(self, request: OpenOnboardingLinkInput) -> OpenOnboardingLinkResult:
        update = workflow.current_update_info()
        operation_id = update.id if update is not None else str(workflow.uuid4())
        self._handled += 1
        async with self._lock:
            record = await self._open_token(request.token_id)
            reused = self._fresh_link(request.token_id, forced_new=request.new_link)
            if reused is not None:
                return reused
            try:
                account = await asyncio.wait_for(
                    ensure_connect_account(self._user_id), LINK_BUDGET.total_seconds()
                )
            except TimeoutError:
                raise ApplicationError(
                    "Stripe did not create the Connect account in time; try again",
                    type=errors.STRIPE_UNAVAILABLE,
                    non_retryable=True,
                ) from None
            except ActivityError as error:
                raise _stripe_failure(error, "ensure Connect account") from None
            self._account_id = account.stripe_id
            try:
                link: AccountLinkResult = await workflow.execute_activity_method(
                    StripeConnectActivities.create_account_link,
                    CreateAccountLinkInput(
                        account_id=account.stripe_id,
                        token_id=request.token_id,
                        public_url=request.public_url,
                        workflow_id=workflow.info().workflow_id,
                        operation_id=operation_id,
                    ),
                    **STRIPE_LINK,
                )
            except ActivityError as error:
                raise _stripe_failure(error, "create account link") from None
            # Only now that the link exists does the token move (SPEC 3.2).
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
            except ActivityError as error:
                raise _passthrough(error) from None
            self._tokens[request.token_id] = _Token(
                "in_progress",
                record.expires_at,
                sealed_link=link.sealed_url,
                link_expires_at=link.expires_at,
                account_id=account.stripe_id,
            )
            # The user is on Stripe's pages now: polling starts over at its shortest.
            self._restart_polling()
            self._wake = True
            return OpenOnboardingLinkResult(
                sealed_url=link.sealed_url,
                expires_at=link.expires_at,
                account_id=account.stripe_id,
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
            if self._in_progress():
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
            now = workflow.now()
            poll_due = self._next_poll is not None and self._next_poll <= now
            retry_due = self._stuck is not None and self._stuck.next_attempt_at <= now
            if self._recheck or poll_due or retry_due:
                self._recheck = False
                async with self._lock:
                    read = await self._sync_account()
                if not self._in_progress():
                    self._next_poll = None
                else:
                    if poll_due and read:
                        # Nothing decided yet: webhooks stay the primary signal, so
                        # the next look is further away (capped).
                        self._poll = min(self._poll * 2, self._poll_max)
                    self._next_poll = workflow.now() + self._poll
            if not self._open() and not self._recheck and self._stuck is None:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self._open() and not self._recheck and self._stuck is None:
                    return self.status()
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    OnboardingWorkflowInput(
                        user_id=self._user_id,
                        poll_seconds=self._poll_first.total_seconds(),
                        poll_max_seconds=self._poll_max.total_seconds(),
                        continue_after=self._continue_after,
                        account_id=self._account_id,
                        applied_event_ids=list(self._applied_events),
                        recheck=self._recheck,
                    )
                )
            deadlines = [t.expires_at for t in self._tokens.values() if t.status in _OPEN]
            if self._next_poll is not None:
                deadlines.append(self._next_poll)
            if self._stuck is not None:
                deadlines.append(self._stuck.next_attempt_at)
            wait = min(deadlines) - workflow.now() if deadlines else None
            if wait is not None and wait <= timedelta(0):
                continue
            self._wake = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake or self._recheck or self._should_continue_as_new(),
                    timeout=wait,
                )

    # --- steps --------------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        return (
            self._handled >= self._continue_after or workflow.info().is_continue_as_new_suggested()
        )

    def _fresh_link(self, token_id: str, *, forced_new: bool) -> OpenOnboardingLinkResult | None:
        """The token's last account link while it has time left, so repeated opens cost
        neither a Stripe call nor a history of their own. Stripe's refresh_url (the link
        was visited or expired at Stripe) always asks for a new one."""
        token = self._tokens.get(token_id)
        if (
            forced_new
            or token is None
            or token.sealed_link is None
            or token.link_expires_at is None
            or token.account_id is None
            or token.link_expires_at - workflow.now() < LINK_REUSE_MARGIN
        ):
            return None
        return OpenOnboardingLinkResult(
            sealed_url=token.sealed_link,
            expires_at=token.link_expires_at,
            account_id=token.account_id,
        )

    def _open(self) -> list[str]:
        return [token_id for token_id, t in self._tokens.items() if t.status in _OPEN]

    def _in_progress(self) -> bool:
        return any(t.status == "in_progress" for t in self._tokens.values())

    def _restart_polling(self) -> None:
        self._poll = self._poll_first
        self._next_poll = workflow.now() + self._poll

    async def _load_open_tokens(self) -> None:
        """Pick up tokens a previous run left open, so their timers keep running."""
        records: list[OnboardingTokenRecord] = await database_step(
            OnboardingActivities.open_onboarding_tokens, UserRef(user_id=self._user_id)
        )
        for record in records:
            self._tokens.setdefault(record.token_id, _Token(record.status, record.expires_at))
        if self._in_progress() and self._next_poll is None:
            self._next_poll = workflow.now()

    async def _open_token(self, token_id: str) -> OnboardingTokenRecord:
        try:
            record: OnboardingTokenRecord = await database_step(
                OnboardingActivities.read_onboarding_token, TokenRef(token_id=token_id)
            )
        except ActivityError as error:
            raise _passthrough(error) from None
        if record.user_id != self._user_id:
            raise ApplicationError(
                f"no onboarding token {token_id} for this user",
                type=errors.ONBOARDING_TOKEN_NOT_FOUND,
                non_retryable=True,
            )
        if record.status not in _OPEN or record.expires_at <= workflow.now():
            raise ApplicationError(
                f"onboarding token is {record.status if record.status not in _OPEN else 'expired'}",
                type=errors.ONBOARDING_TOKEN_GONE,
                non_retryable=True,
            )
        self._tokens.setdefault(token_id, _Token(record.status, record.expires_at))
        return record

    async def _expire_due_tokens(self) -> None:
        now = workflow.now()
        due = [
            token_id
            for token_id, t in self._tokens.items()
            if t.status in _OPEN and t.expires_at <= now
        ]
        if not due:
            return
        async with self._lock:
            for token_id in due:
                await database_step(
                    OnboardingActivities.expire_onboarding_token, TokenRef(token_id=token_id)
                )
                # Expired here, or already closed (completed/revoked) in Postgres.
                if self._tokens[token_id].status in _OPEN:
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
        except ActivityError as error:
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
            # Ownership (SPEC 10): only the account saved for the user is applied.
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
        for token_id in result.completed_token_ids:
            if token_id in self._tokens:
                self._tokens[token_id].status = "completed"
        if snapshot.onboarding_complete:
            for token in self._tokens.values():
                if token.status == "in_progress":
                    token.status = "completed"
        return True

    def _record_stuck(self, step: str, error: ActivityError) -> None:
        """Keep the state, show the step to operators, and schedule the next attempt."""
        cause = error.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        now = workflow.now()
        failures = self._stuck.failures + 1 if self._stuck is not None else 1
        backoff = min(READ_RETRY_FIRST * 2 ** min(failures - 1, 10), READ_RETRY_MAX)
        self._stuck = StuckStep(
            step=step,
            error_type=cause.type if isinstance(cause, ApplicationError) else None,
            message=message,
            failures=failures,
            since=self._stuck.since if self._stuck is not None else now,
            next_attempt_at=now + backoff,
        )
        # The run loop must wait for the retry even when a handler recorded it.
        self._wake = True
        workflow.logger.warning(
            "%s failed (%d in a row), next attempt in %s: %s", step, failures, backoff, message
        )


def _passthrough(error: ActivityError) -> ApplicationError:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return ApplicationError(cause.message, type=cause.type, non_retryable=True)
    return ApplicationError(str(cause or error), non_retryable=True)


def _stripe_failure(error: ActivityError, step: str) -> ApplicationError:
    """Stripe failed after the bounded retries: the API answers 502, the token is untouched."""
    cause = error.cause
    message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
    cause_type = cause.type if isinstance(cause, ApplicationError) else None
    return ApplicationError(
        f"{step} failed: {message}",
        {"step": step, "cause_type": cause_type},
        type=cause_type or errors.STRIPE_UNAVAILABLE,
        non_retryable=True,
    )
