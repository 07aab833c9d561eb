"""Reconciliation: `reconcile` (a Temporal Schedule) and `onramp reconcile` runs.

A run pages through Stripe's customers, Connect accounts and subscriptions, then the
saved ids Stripe did not list, then the stuck states in Postgres. The page cursor and the
counters travel in the input across continue-as-new; findings are written by the page
steps (Postgres), never carried in history. Messages hold ids and states only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.contracts.common import (
    STATUS_QUERY,
    STRIPE_EVENT_SIGNAL,
    QueryRef,
    SignalRef,
    StripeEventSignal,
    WorkflowRef,
)
from workflows.contracts.subscription import SUBSCRIPTION

RECONCILE_WORKFLOW = "ReconcileWorkflow"
RECONCILE_SCHEDULE_ID = "reconcile"

# Stripe's list phases, then the saved ids nobody listed, then Postgres' stuck states.
Phase = Literal[
    "customers", "accounts", "subscriptions", "missing_users", "missing_billing", "stuck"
]
PHASES: tuple[Phase, ...] = (
    "customers",
    "accounts",
    "subscriptions",
    "missing_users",
    "missing_billing",
    "stuck",
)


def reconcile_workflow_id(suffix: str) -> str:
    """`reconcile-<suffix>` for a run started by hand (`onramp reconcile`)."""
    return f"reconcile-{suffix}"


class ReconcilePolicy(BaseModel):
    """The worker's settings of a run (learnt from the first step, so a Schedule's
    stored input never pins them)."""

    page_size: int = Field(default=100, ge=1, le=100)
    budget_seconds: float = 1800.0
    max_repairs: int = 100
    orphan_grace_seconds: float = 86400.0
    stuck_checkout_seconds: float = 3600.0
    stuck_onboarding_seconds: float = 7 * 86400.0
    stuck_provisioning_seconds: float = 3600.0
    # Pages before continue-as-new (the time-skipping server never suggests it).
    pages_per_run: int = Field(default=200, ge=1)


class ReconcileInput(BaseModel):
    dry_run: bool = False
    # Set on continue-as-new: the run row and where its paging stands.
    run_id: str | None = None
    started_at: datetime | None = None
    phase: Phase = "customers"
    cursor: str | None = None
    repairs: int = 0
    policy: ReconcilePolicy | None = None


class BeginRunInput(BaseModel):
    run_id: str
    workflow_id: str
    dry_run: bool


class RunStarted(BaseModel):
    run_id: str
    started_at: datetime
    policy: ReconcilePolicy


RepairAction = Literal["reread_subscription", "delete_customer"]


class Repair(BaseModel):
    """A safe repair a page step asks the workflow for (the workflow does it unless the
    run is a dry run)."""

    action: RepairAction
    finding_id: int
    user_id: str
    stripe_id: str


class PageInput(BaseModel):
    run_id: str
    phase: Phase
    cursor: str | None
    policy: ReconcilePolicy


class PageResult(BaseModel):
    """One page compared: where the next starts (`phase` moves on when a phase ends)."""

    phase: Phase | None = Field(description="None: every phase is done")
    cursor: str | None
    objects: int = 0
    findings: int = 0
    repairs: list[Repair] = Field(default_factory=list)


class RereadInput(BaseModel):
    run_id: str
    user_id: str
    subscription_id: str


class DeleteOrphanInput(BaseModel):
    run_id: str
    user_id: str
    customer_id: str
    grace_seconds: float


class RepairOutcome(BaseModel):
    done: bool
    note: str


class RecordRepairInput(BaseModel):
    finding_id: int
    note: str


class FinishRunInput(BaseModel):
    run_id: str
    complete: bool
    repairs: int


class ReconcileResult(BaseModel):
    run_id: str
    complete: bool
    repairs: int = 0


RECONCILE = WorkflowRef(RECONCILE_WORKFLOW, ReconcileInput, ReconcileResult)
# The webhook dispatcher's path to `subscription-<user>`: a Stripe event as a re-read
# trigger, by signal-with-start (reconciliation's drift repair takes the same one).
SUBSCRIPTION_REREAD = SignalRef(SUBSCRIPTION, STRIPE_EVENT_SIGNAL, StripeEventSignal)


class ReconcileStatus(BaseModel):
    run_id: str | None
    dry_run: bool
    phase: Phase | None
    cursor: str | None
    repairs: int


RECONCILE_STATUS = QueryRef(RECONCILE, STATUS_QUERY, ReconcileStatus)
