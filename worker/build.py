"""The one place that builds activity objects with their dependencies and the worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import stripe
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from onramp import stripe_client
from onramp.settings import WorkerSettings
from worker.heartbeats import HeartbeatInterceptor
from worker.metrics import StepMetricsInterceptor
from worker.registry import activities_for, workflow_classes


@dataclass(frozen=True)
class WorkerDependencies:
    """What activities need, built once per worker process."""

    settings: WorkerSettings
    pool: asyncpg.Pool
    stripe: stripe.StripeClient

    @classmethod
    def build(cls, settings: WorkerSettings, pool: asyncpg.Pool) -> WorkerDependencies:
        return cls(settings=settings, pool=pool, stripe=build_stripe_client(settings))


def build_stripe_client(settings: WorkerSettings) -> stripe.StripeClient:
    """The worker's Stripe client (onramp.stripe_client: pinned API version)."""
    return stripe_client.build_stripe_client(
        settings.stripe_secret_key.get_secret_value(),
        settings.stripe_api_base,
        max_requests_per_second=settings.stripe_max_requests_per_second,
    )


# Modules every workflow imports that hold no state and read no clock: imported once per
# worker process instead of once per workflow run (a re-import costs CPU on every run).
# Passed through, they are outside the sandbox's guard, so they must stay free of
# clocks, randomness and I/O (they use only `temporalio.workflow` for those); the
# workflow modules themselves stay sandboxed, and a clock call there is still refused.
PASSED_THROUGH_MODULES = (
    "workflows.contracts",
    "workflows.errors",
    "workflows.policies",
    "workflows.search_attributes",
    "workflows.local_steps",
    "workflows.ensure",
    "workflows.subscription_state",
    "workflows.checkout_state",
    "workflows.onboarding_state",
    "workflows.failures",
    "workflows.idempotency_keys",
    # The tracing interceptor's workflow side keeps its context in OpenTelemetry's
    # context variables: one copy of the library for the host and the sandbox, or the
    # spans a workflow schedules lose their parent. Workflows themselves never use it.
    "opentelemetry",
)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The workflow sandbox, with the contracts and the stateless helpers passed through.

    Activity modules are passed through, so the models they return are the host's
    classes; a sandbox-reloaded copy of `workflows.contracts` would hold other classes
    of the same name, and pydantic refuses an instance of one where the other is
    expected. The contracts are pure pydantic models, safe to share.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH_MODULES)
    )


def build_worker(
    client: Client,
    task_queue: str,
    dependencies: WorkerDependencies,
    *,
    graceful_shutdown: timedelta = timedelta(seconds=30),
    workflows: Sequence[type] | None = None,
    activities: Sequence[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for every onramp workflow and activity (tests may pass their own)."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(workflows if workflows is not None else workflow_classes()),
        activities=list(activities if activities is not None else activities_for(dependencies)),
        graceful_shutdown_timeout=graceful_shutdown,
        workflow_runner=workflow_runner(),
        # The client's tracing interceptor (when tracing is on) comes with the client.
        interceptors=[HeartbeatInterceptor(), StepMetricsInterceptor()],
    )
