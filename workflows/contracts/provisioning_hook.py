"""The provisioning hook: the activities a platform implements in its own worker.

When the worker's `PROVISIONING_TASK_QUEUE` is set, `checkout-<user>` provisions the
paying customer by calling `provision_customer` on that task queue (by name, so the
platform's worker may be written with any Temporal SDK), and `deprovision_customer`
there when the provisioning fails for good. The payloads are JSON objects with these
fields (docs/PROVISIONING_HOOK.md is the contract the platform reads).

Fields may be added (with defaults); none is ever renamed or removed: a platform's
worker and recorded histories hold them. No secret is ever a field here. The email is
personal data, not a secret: the platform needs to know whom it provisions.
"""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.common import BillingCycle, Tier

PROVISION_CUSTOMER_ACTIVITY = "provision_customer"
DEPROVISION_CUSTOMER_ACTIVITY = "deprovision_customer"
# The version of the payloads below, sent in every input.
HOOK_VERSION = 1


class ProvisionCustomerInput(BaseModel):
    """What `provision_customer` and `deprovision_customer` receive.

    `idempotency_key` names one provisioning attempt: every retry of the activity (a
    timeout, a dead worker) carries the same key, and the platform must answer a key it
    has seen with the tenant it made for it. An operator's retry after a failure is a
    new attempt with a new key (the previous attempt was deprovisioned).
    """

    version: int = HOOK_VERSION
    user_id: str
    email: str | None = None
    tier: Tier
    billing_cycle: BillingCycle
    checkout_session_id: str
    stripe_subscription_id: str | None = None
    idempotency_key: str


class ProvisionCustomerResult(BaseModel):
    """What `provision_customer` answers: the platform's tenant, and where its dashboard
    is (shown to the customer when they are done, when set).

    Lenient on purpose: a result that cannot be decoded would stall the workflow, while
    one that decodes and is refused by `record_provisioned_tenant` (an empty tenant id,
    a dashboard URL that is not http(s)) fails the provisioning like any refusal.
    """

    tenant_id: str = ""
    dashboard_url: str | None = None

    @classmethod
    def from_answer(cls, answer: object) -> ProvisionCustomerResult:
        """The result from whatever JSON the platform's worker answered, never raising:
        `null`, a string, or a field of the wrong type (a platform's bug) becomes an empty
        tenant id, which `record_provisioned_tenant` refuses, so the provisioning fails
        and is undone instead of stalling the workflow on a result it cannot decode."""
        fields = answer if isinstance(answer, dict) else {}
        tenant_id = fields.get("tenant_id")
        dashboard_url = fields.get("dashboard_url")
        return cls(
            tenant_id=tenant_id if isinstance(tenant_id, str) else "",
            dashboard_url=dashboard_url if isinstance(dashboard_url, str) else None,
        )


class CustomerContact(BaseModel):
    """The user's email, read for the hook's input."""

    email: str | None = None


class RecordProvisionedTenantInput(BaseModel):
    """The platform's answer as received; the activity checks it (the workflow cannot
    refuse a model it builds itself without failing its task)."""

    run_id: str
    user_id: str
    tenant_id: str
    dashboard_url: str | None = None


class RemoveProvisionedTenantInput(BaseModel):
    run_id: str
