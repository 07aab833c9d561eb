"""Stand-in receivers of Stripe event signals, registered under the real workflow names.

They record the signals they get (deduplicated by event id, as every receiver must) and
answer two queries, so the webhook tests and the ingress benchmark can count effects
without the real checkout, onboarding and subscription workflows behind them.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.checkout import CHECKOUT_WORKFLOW
    from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal, UserRef
    from workflows.contracts.onboarding import ONBOARDING_WORKFLOW, OnboardingWorkflowInput
    from workflows.contracts.subscription import SUBSCRIPTION_WORKFLOW, SubscriptionWorkflowInput


class _Recorder:
    def __init__(self) -> None:
        self._applied: list[str] = []
        self._signals = 0
        self._finished = False

    @workflow.signal(name=STRIPE_EVENT_SIGNAL)
    def stripe_event(self, event: StripeEventSignal) -> None:
        self._signals += 1
        if event.event_id not in self._applied:
            self._applied.append(event.event_id)

    @workflow.signal
    def finish(self) -> None:
        self._finished = True

    @workflow.query
    def applied(self) -> list[str]:
        """Event ids applied, once each, in arrival order."""
        return list(self._applied)

    @workflow.query
    def signals_received(self) -> int:
        """Every signal delivered, duplicates included."""
        return self._signals

    async def _wait_until_finished(self) -> list[str]:
        await workflow.wait_condition(lambda: self._finished)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return list(self._applied)


@workflow.defn(name=CHECKOUT_WORKFLOW)
class CheckoutReceiver(_Recorder):
    @workflow.run
    async def run(self, user: UserRef) -> list[str]:
        return await self._wait_until_finished()


@workflow.defn(name=ONBOARDING_WORKFLOW)
class OnboardingReceiver(_Recorder):
    @workflow.run
    async def run(self, start: OnboardingWorkflowInput) -> list[str]:
        return await self._wait_until_finished()


@workflow.defn(name=SUBSCRIPTION_WORKFLOW)
class SubscriptionReceiver(_Recorder):
    @workflow.run
    async def run(self, start: SubscriptionWorkflowInput) -> list[str]:
        return await self._wait_until_finished()


RECEIVERS: list[type] = [CheckoutReceiver, OnboardingReceiver, SubscriptionReceiver]
