"""The codec server the Temporal UI decodes through: Temporal's protocol, the admin key,
CORS for the configured UI origin only, and a 4xx for anything malformed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tests.support.harness import (
    ADMIN_KEY,
    CLIENT_KEY,
    auth,
    make_api_settings,
    open_app_client,
    temporal_address,
)

UI = "http://127.0.0.1:8233"
B64 = base64.b64encode
PLAIN = {
    "metadata": {"encoding": B64(b"json/plain").decode()},
    "data": B64(b'{"email":"ada@example.com","user_id":"u1"}').decode(),
}
Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serve(database_url: str, temporal_env: WorkflowEnvironment, task_queue: str) -> Serve:
    @asynccontextmanager
    async def open_api(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_api_settings(
            database_url,
            temporal_address(temporal_env),
            task_queue,
            **{"temporal_ui_origin": UI, **overrides},
        )
        async for client in open_app_client(create_app(settings)):
            yield client

    return open_api


async def test_encode_then_decode_round_trips_in_the_sample_format(serve: Serve) -> None:
    async with serve() as api:
        encoded = await api.post(
            "/v1/codec/encode", json={"payloads": [PLAIN]}, headers=auth(ADMIN_KEY)
        )
        assert encoded.status_code == 200, encoded.text
        (sealed,) = encoded.json()["payloads"]
        metadata = {name: base64.b64decode(value) for name, value in sealed["metadata"].items()}
        assert metadata == {"encoding": b"binary/encrypted", "encryption-key-id": b"test-key-1"}
        assert b"ada@example.com" not in base64.b64decode(sealed["data"])

        decoded = await api.post(
            "/v1/codec/decode", json={"payloads": [sealed, PLAIN]}, headers=auth(ADMIN_KEY)
        )
        assert decoded.status_code == 200, decoded.text
        assert decoded.json() == {"payloads": [PLAIN, PLAIN]}


async def test_only_an_admin_key_decodes(serve: Serve) -> None:
    async with serve() as api:
        body = {"payloads": [PLAIN]}
        for headers, status in (
            ({}, 401),
            (auth("not-a-key-of-onramp-at-all"), 401),
            (auth(CLIENT_KEY), 403),
            ({"Authorization": f"Basic {ADMIN_KEY}"}, 401),
        ):
            for route in ("/v1/codec/decode", "/v1/codec/encode"):
                refused = await api.post(route, json=body, headers=headers)
                assert refused.status_code == status, (route, headers, refused.text)
                assert "payloads" not in refused.json()


async def test_cors_is_answered_for_the_ui_origin_alone(serve: Serve) -> None:
    async with serve() as api:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        }
        allowed = await api.options("/v1/codec/decode", headers={"Origin": UI, **preflight})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == UI
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"]

        other = await api.options(
            "/v1/codec/decode", headers={"Origin": "http://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers
        assert "access-control-allow-methods" not in other.headers

        body = {"payloads": [PLAIN]}
        decoded = await api.post(
            "/v1/codec/decode", json=body, headers={"Origin": UI, **auth(ADMIN_KEY)}
        )
        assert decoded.headers["access-control-allow-origin"] == UI
        # The UI can read a refusal too (without the header the browser hides it).
        refused = await api.post("/v1/codec/decode", json=body, headers={"Origin": UI})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == UI
        elsewhere = await api.post(
            "/v1/codec/decode",
            json=body,
            headers={"Origin": "http://evil.example", **auth(ADMIN_KEY)},
        )
        assert elsewhere.status_code == 200
        assert "access-control-allow-origin" not in elsewhere.headers

    async with serve(temporal_ui_origin=None) as api:
        unset = await api.options("/v1/codec/decode", headers={"Origin": UI, **preflight})
        assert "access-control-allow-origin" not in unset.headers


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "validation_error"),
        (b'{"payloads": "x"}', "validation_error"),
        (b"{}", "validation_error"),
        (b'{"payloads": [{"data": "%%%"}]}', "validation_error"),
        (b'{"payloads": [{"metadata": {"encoding": "\xc3\xa9t\xc3\xa9"}}]}', "validation_error"),
        (b'{"payloads": [{"metadata": {"encoding": 3}}]}', "validation_error"),
        (b'{"payloads": [' + b",".join([b"{}"] * 1001) + b"]}", "validation_error"),
    ],
)
async def test_malformed_input_is_a_4xx(serve: Serve, body: bytes, code: str) -> None:
    async with serve() as api:
        for route in ("/v1/codec/decode", "/v1/codec/encode"):
            answer = await api.post(
                route,
                content=body,
                headers={"Content-Type": "application/json", **auth(ADMIN_KEY)},
            )
            assert answer.status_code == 422, (route, answer.text)
            assert answer.json()["error"]["code"] == code


async def test_a_payload_that_does_not_decrypt_is_a_422_naming_its_key_id(serve: Serve) -> None:
    sealed = {
        "metadata": {
            "encoding": B64(b"binary/encrypted").decode(),
            "encryption-key-id": B64(b"retired-2024").decode(),
        },
        "data": B64(b"\x00" * 40).decode(),
    }
    async with serve() as api:
        answer = await api.post(
            "/v1/codec/decode", json={"payloads": [sealed]}, headers=auth(ADMIN_KEY)
        )
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "payload_not_decodable"
        assert "retired-2024" in answer.json()["error"]["message"]


async def test_an_oversized_body_is_a_413(serve: Serve) -> None:
    big = {"payloads": [{"data": B64(b"x" * 70_000).decode()}]}
    async with serve() as api:
        answer = await api.post("/v1/codec/decode", json=big, headers=auth(ADMIN_KEY))
        assert answer.status_code == 413


async def test_without_keys_the_codec_server_says_so(serve: Serve) -> None:
    async with serve(onramp_payload_keys=[]) as api:
        answer = await api.post(
            "/v1/codec/decode", json={"payloads": [PLAIN]}, headers=auth(ADMIN_KEY)
        )
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "codec_not_configured"


async def test_the_open_codec_server_of_development(serve: Serve) -> None:
    async with serve(codec_server_open=True) as api:
        answer = await api.post("/v1/codec/decode", json={"payloads": [PLAIN]})
        assert answer.status_code == 200, answer.text
    with pytest.raises(ValidationError, match="test-mode Stripe key only"):
        async with serve(codec_server_open=True, stripe_secret_key=SecretStr("sk_live_abc")):
            pass


def test_the_ui_origin_must_be_an_origin() -> None:
    base = {"temporal_ui_origin": "http://127.0.0.1:8233/"}
    settings = make_api_settings("postgresql://u@h/db", "127.0.0.1:7233", "q", **base)
    assert settings.temporal_ui_origin == "http://127.0.0.1:8233"
    for refused in ("http://ui.example/path", "ftp://ui.example", "ui.example"):
        with pytest.raises(ValidationError):
            make_api_settings(
                "postgresql://u@h/db", "127.0.0.1:7233", "q", temporal_ui_origin=refused
            )
