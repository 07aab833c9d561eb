"""Names of the error types that cross the activity → workflow → API boundaries.

Activities raise `ApplicationError(type=<one of these>)`; workflows and the API match
on the name. Permanent ones are listed in `NON_RETRYABLE` for retry policies.
"""

from __future__ import annotations

DUPLICATE_EMAIL = "DuplicateEmail"
USER_NOT_FOUND = "UserNotFound"
USER_NOT_ACTIVE = "UserNotActive"
STRIPE_CARD_ERROR = "StripeCardError"
STRIPE_INVALID_REQUEST = "StripeInvalidRequest"
STRIPE_AUTHENTICATION = "StripeAuthentication"
# Another caller is using the same idempotency key right now (or used it with other
# parameters): the ensure steps re-read the user row and try again.
STRIPE_IDEMPOTENCY_CONFLICT = "StripeIdempotencyConflict"
STRIPE_RATE_LIMITED = "StripeRateLimited"
STRIPE_UNAVAILABLE = "StripeUnavailable"
SIGNUP_FAILED = "SignupFailed"

NON_RETRYABLE = [
    DUPLICATE_EMAIL,
    USER_NOT_FOUND,
    USER_NOT_ACTIVE,
    STRIPE_CARD_ERROR,
    STRIPE_INVALID_REQUEST,
    STRIPE_AUTHENTICATION,
    STRIPE_IDEMPOTENCY_CONFLICT,
]
