"""onramp's custom search attributes, so operators can find flows in the Temporal UI.

They must be registered on the server before use: `onramp dev` passes them to the dev
server, docker-compose registers them with the admin tools, tests pass them to the
test servers.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

USER_ID = SearchAttributeKey.for_keyword("OnrampUserId")
TIER = SearchAttributeKey.for_keyword("OnrampTier")
PAYMENT_STATE = SearchAttributeKey.for_keyword("OnrampPaymentState")
PROVISIONING_STATE = SearchAttributeKey.for_keyword("OnrampProvisioningState")

ALL: tuple[SearchAttributeKey[str], ...] = (USER_ID, TIER, PAYMENT_STATE, PROVISIONING_STATE)


def user_id_attributes(user_id: str) -> TypedSearchAttributes:
    """The attributes a workflow about one user starts with."""
    return TypedSearchAttributes([SearchAttributePair(USER_ID, user_id)])
