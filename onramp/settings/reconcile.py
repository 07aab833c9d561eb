"""The `RECONCILE_*` concern: how the worker compares Stripe with Postgres
(docs/RECONCILIATION.md)."""

from __future__ import annotations

from pydantic import Field

from onramp.settings.shared import Concern


class ReconcileSettings(Concern):
    """Reconciliation of Stripe with Postgres (docs/RECONCILIATION.md)."""

    reconcile_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="how often the `reconcile` Schedule runs (installed or updated when the "
        "worker starts; 0 removes the Schedule: only `onramp reconcile` runs it)",
    )
    reconcile_page_size: int = Field(
        default=100, ge=1, le=100, description="objects per Stripe list request (Stripe: ≤ 100)"
    )
    reconcile_budget_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="a run still paging after this long stops as `incomplete` (nothing is "
        "resolved; the next run starts over)",
    )
    reconcile_max_repairs: int = Field(
        default=100, ge=0, description="safe repairs one run makes at most; the rest wait"
    )
    reconcile_orphan_grace_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="age below which an orphan customer onramp created is left alone (a "
        "signup may still be saving it)",
    )
    reconcile_stuck_checkout_seconds: float = Field(
        default=3600.0, gt=0, description="a checkout `confirming` this long is stuck"
    )
    reconcile_stuck_onboarding_seconds: float = Field(
        default=7 * 86400.0, gt=0, description="an onboarding `in_progress` this long is stuck"
    )
    reconcile_stuck_provisioning_seconds: float = Field(
        default=3600.0, gt=0, description="a provisioning `failed` this long is stuck"
    )
