"""The check every per-user operation makes first (SPEC 3.1).

A user still `signing_up` may yet be removed by the signup's compensation, so no other
workflow may attach Stripe objects to it: such requests answer 409.
"""

from __future__ import annotations

import asyncpg

from api.errors import ApiError
from onramp.repositories import users
from onramp.repositories.users import UserRow


async def require_active_user(db: asyncpg.Pool, user_id: str) -> UserRow:
    """The user, or 404; 409 while the user is still signing up."""
    user = await users.get_user(db, user_id)
    if user is None:
        raise ApiError(404, "user_not_found", f"No user {user_id}")
    if user.status != "active":
        raise ApiError(409, "user_signing_up", "The user is still signing up; retry shortly")
    return user
