"""Inputs the fuzzer (tests/api/test_fuzz.py) found answered outside the contract.

A NUL character cannot be stored in, or compared with, Postgres text: values that reach
a query unhashed are now refused with 422 before they do (they answered 500, or 502 once
the workflow tried to write them). A body that is not UTF-8 is a 400 in the one shape,
and the OpenAPI schema says so, as it says that every error is that shape.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.harness import ADMIN_KEY, auth


def _assert_validation_error(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/connect/refresh", "state"),
        ("/v1/connect/return", "state"),
        ("/v1/checkout/return", "session_id"),
    ],
)
async def test_nul_in_a_looked_up_query_value_is_422(
    app_client: httpx.AsyncClient, path: str, field: str
) -> None:
    _assert_validation_error(await app_client.get(path, params={field: "cs_a\x00b"}), field)


async def test_the_real_shapes_of_state_and_session_id_still_pass(
    app_client: httpx.AsyncClient,
) -> None:
    unknown_state = await app_client.get("/v1/connect/refresh", params={"state": "Ab_-09"})
    assert unknown_state.status_code == 400
    assert unknown_state.json()["error"]["code"] == "invalid_state"
    unknown_session = await app_client.get(
        "/v1/checkout/return", params={"session_id": "cs_test_a1B2c3"}
    )
    assert unknown_session.status_code == 404
    assert unknown_session.json()["error"]["code"] == "checkout_not_found"


async def test_nul_in_a_signup_email_is_422(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/v1/users", json={"email": "sam\x00@example.com", "username": "sam"}, headers=auth()
    )
    _assert_validation_error(response, "email")


@pytest.mark.parametrize("reason", ["\x00", "support\x00ticket", "   "])
async def test_tier_override_reason_without_nul_or_blank_is_422(
    app_client: httpx.AsyncClient, reason: str
) -> None:
    response = await app_client.put(
        f"/v1/admin/users/{uuid.uuid4()}/tier",
        json={"tier": "pro", "reason": reason},
        headers=auth(ADMIN_KEY),
    )
    _assert_validation_error(response, "reason")


async def test_a_body_that_is_not_utf8_is_400_in_the_shape(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post(
        "/v1/checkout",
        content=b'{"tier": "\xff"}',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"code", "message"}
    schema = (await app_client.get("/openapi.json")).json()
    assert "400" in schema["paths"]["/v1/checkout"]["post"]["responses"]


async def test_openapi_documents_every_error_in_the_one_shape(
    app_client: httpx.AsyncClient,
) -> None:
    schema = (await app_client.get("/openapi.json")).json()
    wrong = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                content = {
                    media_type: entry["schema"].get("$ref")
                    for media_type, entry in response.get("content", {}).items()
                }
                if content != {"application/json": "#/components/schemas/ErrorResponse"}:
                    wrong.append(f"{method.upper()} {path} {status}: {content}")
    assert not wrong, "\n".join(wrong)
