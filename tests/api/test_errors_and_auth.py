"""One error shape everywhere; API keys with scopes."""

from __future__ import annotations

import httpx

from tests.support.harness import ADMIN_KEY, CLIENT_KEY, auth


def _assert_error_shape(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def test_missing_key_is_401(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/v1/admin/webhook-events")
    _assert_error_shape(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_is_401(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/v1/admin/webhook-events", headers=auth("x" * 30))
    _assert_error_shape(response, 401, "unauthorized")


async def test_client_key_on_admin_route_is_403(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/v1/admin/webhook-events", headers=auth(CLIENT_KEY))
    _assert_error_shape(response, 403, "forbidden")


async def test_admin_key_on_admin_route_is_allowed(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/v1/admin/webhook-events?limit=5", headers=auth(ADMIN_KEY))
    assert response.status_code == 200
    page = response.json()
    assert isinstance(page["data"], list) and len(page["data"]) <= 5
    assert isinstance(page["has_more"], bool)


async def test_unknown_route_and_wrong_method_keep_the_shape(app_client: httpx.AsyncClient) -> None:
    _assert_error_shape(await app_client.get("/v1/nowhere"), 404, "not_found")
    _assert_error_shape(await app_client.delete("/healthz"), 405, "method_not_allowed")


async def test_invalid_query_is_422_in_the_shape(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get(
        "/v1/admin/webhook-events?limit=0&status=lost", headers=auth(ADMIN_KEY)
    )
    _assert_error_shape(response, 422, "validation_error")
    assert "limit" in response.json()["error"]["message"]


async def test_openapi_documents_the_error_shape(app_client: httpx.AsyncClient) -> None:
    schema = (await app_client.get("/openapi.json")).json()
    responses = schema["paths"]["/v1/admin/webhook-events"]["get"]["responses"]
    for status in ("401", "403", "422"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ErrorResponse")


async def test_healthz(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
