"""The check every per-user operation makes first, as a dependency.

A user still `signing_up` may yet be removed by the signup's compensation, so no other
workflow may attach Stripe objects to it: such requests answer 409. Routes take
`ActiveUser`, resolved from the `{user_id}` path parameter. FastAPI resolves
dependencies before it validates the query and the body, so a route with either calls
`require_active_user` itself, after validation: an invalid request answers 422 first.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import asyncpg
from fastapi import Depends

from api.deps import Pool
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


async def _active_user(user_id: uuid.UUID, pool: Pool) -> UserRow:
    return await require_active_user(pool, str(user_id))


ActiveUser = Annotated[UserRow, Depends(_active_user)]
