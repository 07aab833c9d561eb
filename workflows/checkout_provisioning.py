"""The provisioning half of `checkout-<user>`: after the payment, hand the subscription
to `subscription-<user>`, then create the workspace, issue the set-password token (its
id only) and send the welcome email.

With a provisioning hook (`CheckoutConfig.provisioning_task_queue`), the platform's own
`provision_customer` activity on that task queue takes the workspace's place, and its
tenant is recorded for the setup status; its compensation is the platform's
`deprovision_customer` (docs/PROVISIONING_HOOK.md).

A permanent failure undoes the provisioning steps in reverse, records `failed` and
waits for an operator's `retry_provisioning`. A mixin of `CheckoutWorkflow`, which is
the one registered workflow; it holds the state these methods read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

from workflows import failures, idempotency_keys, policies
from workflows.contracts.checkout import (
    CheckoutConfig,
    CheckoutSessionSnapshot,
    CheckoutStatus,
    HandOverInput,
    IssuePasswordTokenInput,
    ProvisioningState,
    ProvisioningStepInput,
    RecordCheckoutStateInput,
)
from workflows.contracts.common import SendEmailInput, UserRef
from workflows.contracts.onboarding import TokenRef
from workflows.contracts.provisioning_hook import (
    DEPROVISION_CUSTOMER_ACTIVITY,
    PROVISION_CUSTOMER_ACTIVITY,
    ProvisionCustomerInput,
    ProvisionCustomerResult,
    RecordProvisionedTenantInput,
    RemoveProvisionedTenantInput,
)
from workflows.local_steps import database_step, email_step

with workflow.unsafe.imports_passed_through():
    from activities.checkout import CheckoutActivities
    from activities.email import EmailActivities
    from activities.provisioning import ProvisioningActivities
    from activities.provisioning_hook import ProvisioningHookActivities

# The hand-over waits for `subscription-<user>`, which itself calls Stripe.
HAND_OVER: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=2),
    "schedule_to_close_timeout": timedelta(hours=12),
    "retry_policy": policies.RETRY,
    "heartbeat_timeout": policies.HEARTBEAT_TIMEOUT,
}

# The platform's hook runs in the platform's worker, which must heartbeat (a third of
# the heartbeat timeout is a good pace): a worker that dies mid-call is then retried
# within seconds, under the same idempotency key. A call may take minutes (a tenant's
# database); the retries stop within Stripe's idempotency window like a Stripe write.
PLATFORM_HOOK: policies.ActivityOptions = {
    "start_to_close_timeout": timedelta(minutes=5),
    "schedule_to_close_timeout": timedelta(hours=12),
    "retry_policy": policies.RETRY,
    "heartbeat_timeout": policies.HEARTBEAT_TIMEOUT,
}


@dataclass
class _Progress:
    """How far one provisioning attempt got (what a failure must undo)."""

    step: str = "handover"
    token_id: str | None = None
    handed_over: bool = False  # across attempts: the hand-over is never repeated
    attempt: int = 0  # numbers the hook's idempotency keys (an operator's retry: a new one)
    hook_key: str | None = None  # set once `provision_customer` was called in this attempt


class CheckoutProvisioning:
    _user_id: str
    _config: CheckoutConfig | None
    _session: CheckoutSessionSnapshot | None
    _status: CheckoutStatus
    _retry_requested: bool
    _set_attributes: Callable[[], None]

    async def _provision(self, config: CheckoutConfig) -> None:
        assert self._session is not None
        progress = _Progress()
        await self._record_provisioning("queued", "PROVISIONING_ENQUEUED")
        while True:
            await self._record_provisioning("running", "PROVISIONING_STARTED")
            progress.step = "handover"
            progress.token_id = None
            progress.hook_key = None
            progress.attempt += 1
            try:
                await self._provision_steps(config, progress)
            except failures.STEP_FAILURES as error:
                undo_note = await self._undo(progress, config)
                self._status.last_error = (
                    f"{progress.step}: {failures.failure_message(error)}{undo_note}"
                )
                await self._record_provisioning(
                    "failed", "PROVISIONING_FAILED", error=self._status.last_error
                )
                await workflow.wait_condition(lambda: self._retry_requested)
                self._retry_requested = False
                await self._record_provisioning("queued", "PROVISIONING_ENQUEUED")
                continue
            await self._record_provisioning("completed", "PROVISIONING_COMPLETED", email_sent=True)
            return

    async def _provision_steps(self, config: CheckoutConfig, progress: _Progress) -> None:
        """One attempt, in order; `progress` says where a failure happened."""
        assert self._session is not None
        subscription_id = self._session.subscription_id
        if not progress.handed_over and subscription_id is not None:
            await workflow.execute_activity_method(
                CheckoutActivities.hand_over_subscription,
                HandOverInput(
                    user_id=self._user_id,
                    subscription_id=subscription_id,
                    update_id=idempotency_keys.run_key("handover"),
                ),
                **HAND_OVER,
            )
            progress.handed_over = True
        if config.provisioning_task_queue is not None:
            await self._provision_through_hook(config.provisioning_task_queue, progress)
        else:
            progress.step = "workspace"
            await database_step(ProvisioningActivities.create_workspace, self._step())
        progress.step = "password_token"
        progress.token_id = str(workflow.uuid4())
        await database_step(
            ProvisioningActivities.issue_password_token,
            IssuePasswordTokenInput(
                user_id=self._user_id,
                run_id=workflow.info().run_id,
                token_id=progress.token_id,
                ttl_seconds=config.password_token_ttl_seconds,
            ),
        )
        progress.step = "welcome_email"
        await self._send_welcome_email(str(workflow.uuid4()), progress.token_id)

    async def _provision_through_hook(self, task_queue: str, progress: _Progress) -> None:
        """The platform's `provision_customer`, called by name on its task queue, and its
        answer recorded."""
        assert self._session is not None
        progress.step = "platform"
        contact = await database_step(
            ProvisioningHookActivities.customer_contact, UserRef(user_id=self._user_id)
        )
        progress.hook_key = idempotency_keys.run_key(f"provision_customer/{progress.attempt}")
        request = ProvisionCustomerInput(
            user_id=self._user_id,
            email=contact.email,
            tier=self._status.tier or "pro",
            billing_cycle=self._status.billing_cycle or "monthly",
            checkout_session_id=self._session.session_id,
            stripe_subscription_id=self._session.subscription_id,
            idempotency_key=progress.hook_key,
        )
        # Decoded as plain JSON, then read field by field: a malformed answer must fail
        # the provisioning, not the workflow task.
        answer = await workflow.execute_activity(
            PROVISION_CUSTOMER_ACTIVITY, request, task_queue=task_queue, **PLATFORM_HOOK
        )
        result = ProvisionCustomerResult.from_answer(answer)
        await database_step(
            ProvisioningHookActivities.record_provisioned_tenant,
            RecordProvisionedTenantInput(
                run_id=workflow.info().run_id,
                user_id=self._user_id,
                tenant_id=result.tenant_id,
                dashboard_url=result.dashboard_url,
            ),
        )

    async def _send_welcome_email(self, outbox_id: str, token_id: str) -> None:
        """Through the one email activity, as dunning does."""
        await email_step(
            EmailActivities.send_email,
            SendEmailInput(
                outbox_id=outbox_id,
                template="welcome",
                user_id=self._user_id,
                refs={"token_id": token_id},
            ),
        )

    async def _undo(self, progress: _Progress, config: CheckoutConfig) -> str:
        """Reverse order; each undo is "remove if present" (the handover is not undone:
        the subscription is paid and belongs to `subscription-<user>`). What the undo
        could not do, as a note for the run's error ("" when all was undone)."""
        if progress.step == "handover":
            return ""
        if progress.token_id is not None:
            await database_step(
                ProvisioningActivities.revoke_password_token,
                TokenRef(token_id=progress.token_id),
            )
        if config.provisioning_task_queue is None:
            await database_step(ProvisioningActivities.delete_workspace, self._step())
            return ""
        await database_step(
            ProvisioningHookActivities.remove_provisioned_tenant,
            RemoveProvisionedTenantInput(run_id=workflow.info().run_id),
        )
        if progress.hook_key is None:
            return ""
        return await self._deprovision(config.provisioning_task_queue, progress)

    async def _deprovision(self, task_queue: str, progress: _Progress) -> str:
        """The platform's `deprovision_customer` for this attempt's key, also when
        `provision_customer` itself failed (it may have made part of a tenant). A
        platform that refuses it leaves the run failed, with the refusal in its error."""
        assert self._session is not None and progress.hook_key is not None
        request = ProvisionCustomerInput(
            user_id=self._user_id,
            tier=self._status.tier or "pro",
            billing_cycle=self._status.billing_cycle or "monthly",
            checkout_session_id=self._session.session_id,
            stripe_subscription_id=self._session.subscription_id,
            idempotency_key=progress.hook_key,
        )
        try:
            await workflow.execute_activity(
                DEPROVISION_CUSTOMER_ACTIVITY, request, task_queue=task_queue, **PLATFORM_HOOK
            )
        except failures.STEP_FAILURES as error:
            message = failures.failure_message(error)
            workflow.logger.error(
                "DEPROVISION_FAILED",
                extra={"user_id": self._user_id, "error": message},
            )
            return f" (deprovision_customer failed: {message})"
        return ""

    def _step(self) -> ProvisioningStepInput:
        return ProvisioningStepInput(user_id=self._user_id, run_id=workflow.info().run_id)

    async def _record_provisioning(
        self,
        state: ProvisioningState,
        log: str,
        *,
        error: str | None = None,
        email_sent: bool = False,
    ) -> None:
        # The workflow's own state first: once a client can read `failed` from Postgres,
        # an operator's retry must be accepted.
        self._status.provisioning_state = state
        if email_sent:
            self._status.password_state = "sent"  # noqa: S105 - a state, not a secret
        await database_step(
            CheckoutActivities.record_checkout_state,
            RecordCheckoutStateInput(
                run_id=workflow.info().run_id,
                provisioning_state=state,
                provisioning_error=error,
                password_state="sent" if email_sent else None,
            ),
        )
        self._set_attributes()
        extra = {"user_id": self._user_id, "workflow_id": workflow.info().workflow_id}
        if error is not None:
            workflow.logger.error(log, extra={**extra, "error": error})
        else:
            workflow.logger.info(log, extra=extra)
