"""User ids as Stripe objects carry them.

onramp writes the user's id (a uuid) into the metadata of every Stripe object it
creates, and as a Checkout Session's `client_reference_id`. Anything else found there
(an object made by hand, a malformed value) names no user.
"""

from __future__ import annotations

import uuid
from typing import Any


def parse_user_id(value: Any) -> str | None:
    """A user id as the users table stores it (a uuid, in canonical form), or None."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def metadata_user_id(obj: dict[str, Any]) -> str | None:
    """`metadata.user_id` of a Stripe object when it is a uuid, else None."""
    metadata = obj.get("metadata")
    return parse_user_id(metadata.get("user_id")) if isinstance(metadata, dict) else None
