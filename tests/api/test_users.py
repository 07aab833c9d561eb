"""Input checks of the users routes (the signup journey itself: tests/workflows)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from api.app import create_app
from onramp.settings import ApiSettings
from tests.support.harness import auth, open_app_client


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "username": "sam"}, "email"),
        ({"email": "sam@example.com", "username": ""}, "username"),
        ({"email": "sam@example.com", "username": "has space"}, "username"),
        ({"email": "sam@example.com"}, "username"),
        ({"email": "sam@example.com", "username": "sam", "payouts": "maybe"}, "payouts"),
    ],
)
async def test_invalid_signup_is_422(
    app_client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await app_client.post("/v1/users", json=body, headers=auth())
    assert response.status_code == 422
    assert field in response.json()["error"]["message"]


async def test_signup_needs_a_key(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/v1/users", json={"email": "sam@example.com", "username": "sam"}
    )
    assert response.status_code == 401


async def test_malformed_json_is_422_in_the_shape(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/v1/users",
        content=b"{not json",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_unknown_user_is_404_and_bad_id_is_422(app_client: httpx.AsyncClient) -> None:
    missing = await app_client.get(f"/v1/users/{uuid.uuid4()}", headers=auth())
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "user_not_found"
    malformed = await app_client.get("/v1/users/not-a-uuid", headers=auth())
    assert malformed.status_code == 422


async def test_signup_answers_503_while_temporal_is_down(
    database_url: str, task_queue: str
) -> None:
    from api.app import create_app
    from tests.support.harness import make_api_settings, open_app_client

    settings = make_api_settings(database_url, "127.0.0.1:1", task_queue)
    async for client in open_app_client(create_app(settings)):
        response = await client.post(
            "/v1/users",
            json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "username": "sam"},
            headers={**auth(), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "temporal_unavailable"


async def test_status_url_of_a_202_answers_before_the_profile_exists(
    api_settings: ApiSettings,
) -> None:
    """No worker polls this test's task queue: the signup workflow runs but has not
    written the profile. Its status URL says so (202), it never claims "no such user"."""
    settings = api_settings.model_copy(update={"signup_wait_seconds": 0.2})
    async for client in open_app_client(create_app(settings)):
        accepted = await client.post(
            "/v1/users",
            json={"email": f"slow-{uuid.uuid4().hex[:8]}@example.com", "username": "slow"},
            headers={**auth(), "Idempotency-Key": uuid.uuid4().hex},
        )
        assert accepted.status_code == 202, accepted.text
        pending = accepted.json()
        polled = await client.get(pending["status_url"], headers=auth())
        assert polled.status_code == 202, polled.text
        assert polled.json() == pending
