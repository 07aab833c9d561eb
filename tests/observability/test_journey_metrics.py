"""After one journey run by a real `python -m worker` process, the per-step metrics are on
the worker's `/metrics` (WORKER_METRICS_ADDRESS) and the webhook lag on the API's; the
worker, with OTEL_EXPORTER_OTLP_ENDPOINT set, sends its spans by OTLP/HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from tests.observability.conftest import OpenJourney, free_port
from tests.support.api_server import serve_app
from tests.support.polling import eventually, until

pytestmark = pytest.mark.slow


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a Prometheus text page (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


class Collector:
    """An OTLP/HTTP receiver: keeps the spans posted to `/v1/traces`."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.raw = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            self.raw += body
            for resource in request.resource_spans:
                for scoped in resource.scope_spans:
                    self.names += [span.name for span in scoped.spans]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def test_metrics_after_a_journey(journey_stack: OpenJourney) -> None:
    collector = Collector()
    port = free_port()
    async with serve_app(collector) as collector_url:
        worker_env = {
            "WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        async with journey_stack(worker_process=worker_env) as stack:
            user_id, address = await stack.signup()
            await stack.checkout_and_pay(user_id)
            await until(lambda: bool(stack.mail.to(address)), what="the welcome email")
            worker_page = await _worker_metrics(port)
            api_page = (await stack.api.get("/metrics")).text
            await until(lambda: "RunActivity:send_email" in collector.names, what="OTLP spans")

    steps: dict[str, Any] = {
        "SignupWorkflow": ("insert_profile", "create_stripe_customer", "create_connect_account"),
        "CheckoutWorkflow": ("create_checkout_session", "create_workspace", "send_email"),
    }
    for workflow, names in steps.items():
        for step in names:
            count = sample(
                worker_page, "onramp_step_duration_seconds_count", workflow=workflow, step=step
            )
            assert count >= 1, (workflow, step)
    assert "onramp_step_failures_total" in worker_page
    for operation in ("customers.create", "accounts.create", "checkout.sessions.create"):
        assert (
            sample(worker_page, "onramp_stripe_request_seconds_count", operation=operation) >= 1
        ), operation
    assert "onramp_stripe_errors_total" in worker_page
    assert sample(worker_page, "onramp_checkout_pay_to_provisioned_seconds_count") == 1
    assert sample(worker_page, "onramp_provisioning_failures_total") == 0
    # The worker process serves its own metrics, not the API's.
    assert "onramp_webhook_lag_seconds" not in worker_page

    assert sample(api_page, "onramp_webhook_lag_seconds_count") >= 1
    assert sample(api_page, "onramp_api_request_seconds_count", route="/v1/users") >= 1

    # The worker's spans reached the collector: every step, no email.
    for step in ("insert_profile", "create_stripe_customer", "send_email"):
        assert f"RunActivity:{step}" in collector.names
    assert "stripe.customers.create" in collector.names
    assert address.encode() not in collector.raw


async def _worker_metrics(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as client:

        async def scrape() -> str:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                return ""

        return await eventually(
            scrape,
            lambda page: sample(page, "onramp_checkout_pay_to_provisioned_seconds_count") >= 1,
            seconds=30,
        )
