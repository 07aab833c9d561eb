"""Fixtures of the webhook tests: a real API over HTTP, receiver workflows, captured logs."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from devstack.stripe_receivers import RECEIVERS
from onramp.logging import JsonFormatter
from onramp.settings import ApiSettings
from tests.conftest import make_api_settings, temporal_address
from tests.support.api_server import serve_app


class LogLines(logging.Handler):
    """The webhook package's log records, as the JSON lines operators would read."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def events(self, name: str) -> list[dict[str, object]]:
        entries = [json.loads(line) for line in self.lines]
        return [entry for entry in entries if entry.get("event") == name]


@pytest.fixture
def webhook_logs() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("api.webhooks")
    previous_level = logger.level
    logger.setLevel(logging.INFO)  # the app leaves logging alone when given settings
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


@pytest.fixture
def webhook_settings(
    database_url: str, temporal_env: WorkflowEnvironment, task_queue: str
) -> ApiSettings:
    return make_api_settings(database_url, temporal_address(temporal_env), task_queue)


@pytest.fixture
async def api_url(webhook_settings: ApiSettings) -> AsyncIterator[str]:
    """The API served by uvicorn on a free 127.0.0.1 port."""
    async with serve_app(create_app(webhook_settings)) as base_url:
        yield base_url


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
async def receivers(temporal_env: WorkflowEnvironment, task_queue: str) -> AsyncIterator[Client]:
    """The test receiver workflows, polling this test's task queue."""
    async with Worker(temporal_env.client, task_queue=task_queue, workflows=RECEIVERS):
        yield temporal_env.client
