"""Names of the error types that cross the activity → workflow → API boundaries.

Activities raise `ApplicationError(type=<one of these>)`; workflows and the API match
on the name. Permanent ones are listed in `NON_RETRYABLE` for retry policies.
"""

from __future__ import annotations

DUPLICATE_EMAIL = "DuplicateEmail"
USER_NOT_FOUND = "UserNotFound"
STRIPE_CARD_ERROR = "StripeCardError"
STRIPE_INVALID_REQUEST = "StripeInvalidRequest"
STRIPE_AUTHENTICATION = "StripeAuthentication"
# Another caller is using the same idempotency key right now (or used it with other
# parameters): the ensure steps re-read the user row and try again.
STRIPE_IDEMPOTENCY_CONFLICT = "StripeIdempotencyConflict"
# A 409 `idempotency_key_in_use`: the first request with this key is still running at
# Stripe, which saved nothing for ours. Retryable, under the same key.
STRIPE_IDEMPOTENCY_IN_FLIGHT = "StripeIdempotencyInFlight"
STRIPE_RATE_LIMITED = "StripeRateLimited"
STRIPE_UNAVAILABLE = "StripeUnavailable"
SIGNUP_FAILED = "SignupFailed"
# Subscription updates: refused by a validator or a re-check under the lock.
NO_STRIPE_BILLING = "NoStripeBilling"
SUBSCRIPTION_CONFLICT = "SubscriptionConflict"
SUBSCRIPTION_INVALID = "SubscriptionInvalid"
PRICE_NOT_CONFIGURED = "PriceNotConfigured"
# The billing row and users.tier could not be written together (a permanent DB error).
BILLING_WRITE_FAILED = "BillingWriteFailed"
# A new subscription needs a payment method the platform collected; without one the
# user goes through Checkout (the API answers with that next action).
PAYMENT_METHOD_REQUIRED = "PaymentMethodRequired"
# The user's checkout is open: an API upgrade now would make a second subscription.
CHECKOUT_OPEN = "CheckoutOpen"
# A payment of the subscription waits for the customer (authentication): no other
# plan change until Stripe says paid, failed for good, or expired.
PAYMENT_PENDING = "PaymentPending"
# Stripe answered 404 for an object re-read: it is gone (a deleted draft invoice).
STRIPE_OBJECT_MISSING = "StripeObjectMissing"
# Connect onboarding
ONBOARDING_TOKEN_NOT_FOUND = "OnboardingTokenNotFound"  # noqa: S105
# Expired, revoked or completed: the link answers 410.
ONBOARDING_TOKEN_GONE = "OnboardingTokenGone"  # noqa: S105
# Checkout
CHECKOUT_CONFLICT = "CheckoutConflict"  # an active paid subscription exists
CHECKOUT_CLOSED = "CheckoutClosed"  # the run is paid or ending: start another run later
PROVISIONING_REFUSED = "ProvisioningRefused"  # a permanent provisioning failure
PROVISIONING_NOT_FAILED = "ProvisioningNotFailed"  # nothing for an operator to retry
# The mail server refused the message for good (a 5xx): another attempt gets the same.
EMAIL_REFUSED = "EmailRefused"

NON_RETRYABLE = [
    DUPLICATE_EMAIL,
    USER_NOT_FOUND,
    STRIPE_CARD_ERROR,
    STRIPE_INVALID_REQUEST,
    STRIPE_AUTHENTICATION,
    STRIPE_IDEMPOTENCY_CONFLICT,
    ONBOARDING_TOKEN_NOT_FOUND,
    ONBOARDING_TOKEN_GONE,
    NO_STRIPE_BILLING,
    SUBSCRIPTION_CONFLICT,
    SUBSCRIPTION_INVALID,
    PRICE_NOT_CONFIGURED,
    BILLING_WRITE_FAILED,
    PAYMENT_METHOD_REQUIRED,
    CHECKOUT_OPEN,
    PAYMENT_PENDING,
    STRIPE_OBJECT_MISSING,
    CHECKOUT_CONFLICT,
    CHECKOUT_CLOSED,
    PROVISIONING_REFUSED,
    PROVISIONING_NOT_FAILED,
    EMAIL_REFUSED,
]
