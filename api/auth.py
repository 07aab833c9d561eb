"""API-key authentication with two scopes: `client` (the platform backend) and `admin`.

An admin key may do everything a client key may. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from onramp.settings import ApiKey, Scope

_bearer = HTTPBearer(auto_error=False, description="An onramp API key")


def _find_key(keys: list[ApiKey], presented: str) -> ApiKey | None:
    found = None
    for candidate in keys:
        # Compare against every key so the time taken does not reveal which matched.
        if hmac.compare_digest(candidate.key.get_secret_value().encode(), presented.encode()):
            found = candidate
    return found


def require_scope(
    scope: Scope,
) -> Callable[..., Coroutine[Any, Any, ApiKey]]:
    """A dependency that returns the caller's key, or answers 401/403."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiError(
                401,
                "unauthorized",
                "Missing API key: send Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = _find_key(request.app.state.settings.onramp_api_keys, credentials.credentials)
        if key is None:
            raise ApiError(
                401, "unauthorized", "Unknown API key", headers={"WWW-Authenticate": "Bearer"}
            )
        if scope == "admin" and key.scope != "admin":
            raise ApiError(403, "forbidden", "This route needs an admin key")
        return key

    return dependency


ClientKey = Annotated[ApiKey, Depends(require_scope("client"))]
AdminKey = Annotated[ApiKey, Depends(require_scope("admin"))]
