"""Every workflow and activity the onramp worker runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from activities.billing import BillingActivities, billing_config_from
from activities.checkout import CheckoutActivities, checkout_config_from
from activities.email import EmailActivities
from activities.event_delivery import EventDeliveryActivities
from activities.onboarding import OnboardingActivities
from activities.password_links import PasswordLinkActivities
from activities.provisioning import ProvisioningActivities
from activities.provisioning_hook import ProvisioningHookActivities
from activities.reconcile import ReconcileActivities
from activities.stripe_billing import StripeBillingActivities
from activities.stripe_checkout import StripeCheckoutActivities, StripeSetupSessionActivities
from activities.stripe_connect import StripeConnectActivities
from activities.stripe_customers import StripeCustomerActivities
from activities.users import UserActivities
from onramp.emails import EmailBrand, set_password_base_url
from workflows.checkout import CheckoutWorkflow
from workflows.contracts.event_delivery import DeliveryPolicy
from workflows.contracts.reconcile import ReconcilePolicy
from workflows.event_delivery import EventDeliveryWorkflow
from workflows.event_dispatch import EventDispatchWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.password_link import PasswordLinkWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.signup import SignupWorkflow
from workflows.subscription import SubscriptionWorkflow

if TYPE_CHECKING:
    from worker.build import WorkerDependencies


def workflow_classes() -> Sequence[type]:
    return [
        SignupWorkflow,
        OnboardingWorkflow,
        SubscriptionWorkflow,
        CheckoutWorkflow,
        PasswordLinkWorkflow,
        EventDispatchWorkflow,
        EventDeliveryWorkflow,
        ReconcileWorkflow,
    ]


def activities_for(dependencies: WorkerDependencies) -> Sequence[Callable[..., Any]]:
    users = UserActivities(
        dependencies.pool, customers_on_test_clocks=dependencies.settings.stripe_test_clocks
    )
    capabilities = dependencies.settings.connect_capabilities
    stripe_objects = StripeCustomerActivities(
        dependencies.stripe, connect_capabilities=capabilities
    )
    token_secret = dependencies.settings.onramp_token_secret
    onboarding = OnboardingActivities(dependencies.pool, token_secret)
    stripe_connect = StripeConnectActivities(
        dependencies.stripe, token_secret, connect_capabilities=capabilities
    )
    return [
        users.insert_profile,
        users.read_user,
        users.save_stripe_customer_id,
        users.save_connect_account_id,
        users.bump_stripe_customer_generation,
        users.bump_connect_account_generation,
        users.mark_user_active,
        users.delete_signing_up_profile,
        stripe_objects.create_stripe_test_clock,
        stripe_objects.create_stripe_customer,
        stripe_objects.delete_stripe_customer,
        stripe_objects.create_connect_account,
        stripe_objects.delete_connect_account,
        onboarding.insert_onboarding_token,
        onboarding.read_onboarding_token,
        onboarding.open_onboarding_tokens,
        onboarding.mark_onboarding_token_in_progress,
        onboarding.expire_onboarding_token,
        onboarding.record_onboarding_return,
        onboarding.record_connect_account_status,
        stripe_connect.create_account_link,
        stripe_connect.retrieve_connect_account,
        *subscription_activities(dependencies),
        *checkout_activities(dependencies),
        *email_activities(dependencies),
        *password_link_activities(dependencies),
        *event_delivery_activities(dependencies),
        *reconcile_activities(dependencies),
    ]


def reconcile_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The activities of `reconcile` (RECONCILE_* settings)."""
    settings = dependencies.settings
    policy = ReconcilePolicy(
        page_size=settings.reconcile_page_size,
        budget_seconds=settings.reconcile_budget_seconds,
        max_repairs=settings.reconcile_max_repairs,
        orphan_grace_seconds=settings.reconcile_orphan_grace_seconds,
        stuck_checkout_seconds=settings.reconcile_stuck_checkout_seconds,
        stuck_onboarding_seconds=settings.reconcile_stuck_onboarding_seconds,
        stuck_provisioning_seconds=settings.reconcile_stuck_provisioning_seconds,
    )
    reconcile = ReconcileActivities(dependencies.pool, dependencies.stripe, policy)
    return [
        reconcile.begin_reconcile_run,
        reconcile.reconcile_page,
        reconcile.reread_subscription,
        reconcile.delete_orphan_customer,
        reconcile.record_repair,
        reconcile.finish_reconcile_run,
    ]


def event_delivery_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The activities of `event-dispatch-<endpoint>` and `event-delivery-<endpoint>-<user>`."""
    settings = dependencies.settings
    policy = DeliveryPolicy(
        attempt_timeout_seconds=settings.event_delivery_attempt_timeout_seconds,
        initial_backoff_seconds=settings.event_delivery_initial_backoff_seconds,
        max_backoff_seconds=settings.event_delivery_max_backoff_seconds,
        give_up_after_seconds=settings.event_delivery_give_up_after_seconds,
        failing_after_seconds=settings.event_delivery_failing_after_seconds,
        poll_seconds=settings.event_delivery_poll_seconds,
    )
    delivery = EventDeliveryActivities(dependencies.pool, settings.onramp_token_secret, policy)
    return [
        delivery.read_endpoint_events,
        delivery.deliver_directly,
        delivery.hand_over_events,
        delivery.close_lanes,
        delivery.deliver_event,
    ]


def password_link_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The activities of `password-link-<user>` (its email goes through `send_email`)."""
    settings = dependencies.settings
    links = PasswordLinkActivities(
        dependencies.pool,
        settings.onramp_token_secret,
        ttl_seconds=settings.set_password_token_ttl_seconds,
    )
    return [links.password_link_target, links.replace_password_token]


def email_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The one email activity, for dunning and the welcome email."""
    settings = dependencies.settings
    email = EmailActivities(
        dependencies.pool,
        settings.smtp_url,
        settings.email_from,
        token_secret=settings.onramp_token_secret,
        set_password_url=set_password_base_url(
            settings.set_password_url, settings.onramp_public_url
        ),
        brand=EmailBrand.from_settings(settings),
    )
    return [email.send_email]


def subscription_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The activities of `subscription-<user>`."""
    settings = dependencies.settings
    billing = BillingActivities(dependencies.pool, billing_config_from(settings))
    stripe_billing = StripeBillingActivities(dependencies.stripe)
    setup_sessions = StripeSetupSessionActivities(dependencies.stripe)
    return [
        billing.billing_config,
        billing.record_billing,
        billing.record_invoice,
        billing.open_checkout,
        stripe_billing.read_subscription,
        stripe_billing.read_invoice,
        stripe_billing.attach_payment_method,
        stripe_billing.set_default_payment_method,
        stripe_billing.create_subscription,
        stripe_billing.change_subscription_price,
        stripe_billing.set_cancel_at_period_end,
        stripe_billing.set_subscription_payment_method,
        stripe_billing.pay_invoice,
        stripe_billing.cancel_subscription,
        setup_sessions.create_setup_session,
        setup_sessions.read_setup_session,
    ]


def checkout_activities(dependencies: WorkerDependencies) -> list[Callable[..., Any]]:
    """The activities of `checkout-<user>`."""
    settings = dependencies.settings
    checkout = CheckoutActivities(dependencies.pool, checkout_config_from(settings))
    stripe_checkout = StripeCheckoutActivities(dependencies.stripe)
    provisioning = ProvisioningActivities(dependencies.pool, settings.onramp_token_secret)
    hook = ProvisioningHookActivities(dependencies.pool)
    return [
        checkout.checkout_config,
        checkout.check_paid_subscription,
        checkout.record_checkout_session,
        checkout.record_checkout_state,
        checkout.hand_over_subscription,
        stripe_checkout.create_checkout_session,
        stripe_checkout.expire_checkout_session,
        stripe_checkout.retrieve_checkout_session,
        provisioning.create_workspace,
        provisioning.delete_workspace,
        provisioning.issue_password_token,
        provisioning.revoke_password_token,
        hook.customer_contact,
        hook.record_provisioned_tenant,
        hook.remove_provisioned_tenant,
    ]
