"""Settings and helpers shared by the tests (the fixtures live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from onramp.payload_codec import onramp_data_converter
from onramp.settings import ApiSettings, WorkerSettings, parse_api_keys, parse_payload_keys

CLIENT_KEY = "test-client-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
API_KEYS = f"{CLIENT_KEY}:client:test-client,{ADMIN_KEY}:admin:test-admin"
STRIPE_TEST_KEY = "sk_test_onramp_tests"
WEBHOOK_SECRETS = ("whsec_testplatform0001", "whsec_testconnect0002")
TOKEN_SECRET = "test-token-secret-0123456789abcdef0123"
# Every test stack encrypts its Temporal payloads, as a deployment does: the API's
# settings, the worker's and every test client share this key (docs/ENCRYPTION.md).
PAYLOAD_KEYS = "test-key-1:b25yYW1wLXRlc3RzLXBheWxvYWQta2V5LTMyYnl0ZXM="
TEST_PAYLOAD_KEYS = parse_payload_keys(PAYLOAD_KEYS)
DATA_CONVERTER = onramp_data_converter(TEST_PAYLOAD_KEYS)
# How long a test stack's in-process worker lets activities still running when the test
# ends finish before it cancels them (`build_worker` defaults to production's 30 s, which
# a stack's teardown then waited out whenever a test left an activity in flight).
WORKER_GRACEFUL_SHUTDOWN = timedelta(seconds=1)


def temporal_address(env: WorkflowEnvironment) -> str:
    target: str = env.client.service_client.config.target_host
    return target


def make_api_settings(
    database_url: str, temporal: str, task_queue: str, **overrides: Any
) -> ApiSettings:
    """API settings built explicitly (no environment, no patched globals)."""
    values: dict[str, Any] = {
        "database_url": SecretStr(database_url),
        "temporal_address": temporal,
        "temporal_task_queue": task_queue,
        "onramp_api_keys": parse_api_keys(API_KEYS),
        "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
        "stripe_webhook_secrets": [SecretStr(secret) for secret in WEBHOOK_SECRETS],
        "temporal_rpc_timeout_seconds": 3.0,
        "onramp_token_secret": SecretStr(TOKEN_SECRET),
        "onramp_payload_keys": TEST_PAYLOAD_KEYS,
    }
    values.update(overrides)
    return ApiSettings.model_validate(values)


async def open_app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onramp.test") as client:
            yield client


def auth(key: str = CLIENT_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_worker_settings(
    database_url: str, temporal: str, task_queue: str, stripe_api_base: str | None = None
) -> WorkerSettings:
    return WorkerSettings.model_validate(
        {
            "database_url": SecretStr(database_url),
            "temporal_address": temporal,
            "temporal_task_queue": task_queue,
            "stripe_secret_key": SecretStr(STRIPE_TEST_KEY),
            "stripe_api_base": stripe_api_base,
            "worker_graceful_shutdown_seconds": 2.0,
            "onramp_token_secret": SecretStr(TOKEN_SECRET),
            "onramp_payload_keys": TEST_PAYLOAD_KEYS,
        }
    )


def worker_process_env(
    database_url: str, temporal: str, task_queue: str, stripe_api_base: str, **extra: str
) -> dict[str, str]:
    """The environment of a real `python -m worker` process in a test."""
    import os

    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "STRIPE_SECRET_KEY": STRIPE_TEST_KEY,
        "STRIPE_API_BASE": stripe_api_base,
        "ONRAMP_TOKEN_SECRET": TOKEN_SECRET,
        # No `reconcile` Schedule from test workers: it would reconcile the shared
        # database and sandbox of the whole session when it fires.
        "RECONCILE_INTERVAL_SECONDS": "0",
        "ONRAMP_PAYLOAD_KEYS": PAYLOAD_KEYS,
        **extra,
    }
