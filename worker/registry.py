"""Every workflow and activity the onramp worker runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from activities.stripe_customers import StripeCustomerActivities
from activities.users import UserActivities
from workflows.signup import SignupWorkflow

if TYPE_CHECKING:
    from worker.build import WorkerDependencies


def workflow_classes() -> Sequence[type]:
    return [SignupWorkflow]


def activities_for(dependencies: WorkerDependencies) -> Sequence[Callable[..., Any]]:
    users = UserActivities(dependencies.pool)
    stripe_objects = StripeCustomerActivities(dependencies.stripe)
    return [
        users.insert_profile,
        users.read_user,
        users.save_stripe_customer_id,
        users.save_connect_account_id,
        users.bump_stripe_customer_generation,
        users.bump_connect_account_generation,
        users.mark_user_active,
        users.delete_signing_up_profile,
        stripe_objects.create_stripe_customer,
        stripe_objects.delete_stripe_customer,
        stripe_objects.create_connect_account,
        stripe_objects.delete_connect_account,
    ]
