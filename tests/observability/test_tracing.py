"""The pieces of tracing and metrics, one by one: trace ids in log lines, what the
exporter lets out, the sampler, the journey's continuation, the step and Stripe
metrics, and the worker's metrics address."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from typing import Any

import pytest
import stripe
from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import REGISTRY
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from activities.stripe_gateway import call_stripe
from onramp import tracing
from onramp.logging import JsonFormatter
from onramp.settings import WorkerSettings
from worker.metrics import MetricsServer, StepMetricsInterceptor

_LOCAL = TracerProvider()  # a provider of this module's own: the global one is untouched


def _record() -> logging.LogRecord:
    return logging.LogRecord("worker", logging.INFO, __file__, 1, "STEP", None, None)


def test_a_json_line_carries_the_current_trace_and_span() -> None:
    with _LOCAL.get_tracer("test").start_as_current_span("step") as span:
        inside = json.loads(JsonFormatter().format(_record()))
    outside = json.loads(JsonFormatter().format(_record()))
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert "trace_id" not in outside and "span_id" not in outside


def test_exported_attributes_keep_the_route_and_lose_queries_emails_and_secrets() -> None:
    cleaned = tracing.redacted_attributes(
        {
            "http.route": "/v1/portal/set-password",
            "http.target": "/v1/portal/set-password?token=abc123",
            "url.path": "/v1/portal/set-password",
            "url.query": "token=abc123",
            "http.url": "http://onramp.test:8000/v1/portal/set-password?token=abc123",
            "note": "for ada@example.com with sk_test_0123456789abcdef",
            "ids": ("cus_123", "bob@example.org"),
            "count": 3,
            "net.peer.ip": "203.0.113.7",
            "client.address": "203.0.113.7",
        }
    )
    assert "net.peer.ip" not in cleaned and "client.address" not in cleaned
    assert cleaned["http.target"] == "/v1/portal/set-password"
    assert cleaned["url.path"] == "/v1/portal/set-password"
    assert "url.query" not in cleaned
    assert cleaned["http.url"] == "http://onramp.test:8000/v1/portal/set-password"
    assert cleaned["note"] == "for [EMAIL] with [REDACTED]"
    assert cleaned["ids"] == ("cus_123", "[EMAIL]")
    assert cleaned["count"] == 3


def test_the_exporter_masks_events_status_and_names() -> None:
    inner = InMemorySpanExporter()
    span = ReadableSpan(
        name="signup ada@example.com",
        attributes={"a": "x"},
        events=[Event("exception", {"exception.message": "taken: ada@example.com"})],
        status=Status(StatusCode.ERROR, "EmailTaken: ada@example.com"),
    )
    tracing.RedactingExporter(inner).export([span])
    (exported,) = inner.get_finished_spans()
    assert exported.name == "signup [EMAIL]"
    assert exported.events[0].attributes == {"exception.message": "taken: [EMAIL]"}
    assert exported.status.description == "EmailTaken: [EMAIL]"


def test_a_statement_starts_no_trace_of_its_own() -> None:
    sampler = tracing.StatementsInsideSpans()
    statement = {"db.system": "postgresql", "db.statement": "SELECT 1"}
    alone = sampler.should_sample(None, 1, "SELECT", SpanKind.CLIENT, statement)
    assert alone.decision == Decision.DROP
    request = sampler.should_sample(None, 1, "POST /v1/users", SpanKind.SERVER, {})
    assert request.decision == Decision.RECORD_AND_SAMPLE
    with _LOCAL.get_tracer("test").start_as_current_span("step"):
        inside = sampler.should_sample(None, 1, "SELECT", SpanKind.CLIENT, statement)
    assert inside.decision == Decision.RECORD_AND_SAMPLE


def test_without_tracing_a_journey_is_not_continued() -> None:
    tracing.disable()
    before = trace.get_current_span()
    with tracing.continue_journey("00-" + "1" * 32 + "-" + "2" * 16 + "-01", "journey.x"):
        assert trace.get_current_span() is before
    assert tracing.temporal_interceptors() == []


def test_a_later_operation_continues_the_stored_journey(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("signup step"):
        journey = tracing.current_traceparent()
    assert journey is not None
    with tracer.start_as_current_span("POST /v1/checkout") as request:
        with tracing.continue_journey(journey, "journey.checkout", user_id="u1"):
            inner = trace.get_current_span().get_span_context()
        with tracing.continue_journey("not-a-traceparent", "journey.checkout"):
            assert trace.get_current_span() is request
    assert format(inner.trace_id, "032x") == journey.split("-")[1]
    (continued,) = [span for span in spans.get_finished_spans() if span.name == "journey.checkout"]
    assert continued.parent is not None
    assert format(continued.parent.span_id, "016x") == journey.split("-")[2]
    assert [link.context.span_id for link in continued.links] == [
        request.get_span_context().span_id
    ]
    assert continued.attributes == {"user_id": "u1"}
    assert len(tracing.temporal_interceptors()) == 1


class _Failing(ActivityInboundInterceptor):
    def __init__(self) -> None:
        pass

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        raise ApplicationError("Stripe is down", type="StripeUnavailable")


async def test_a_failed_step_attempt_is_counted_and_timed() -> None:
    labels = {"workflow": "SignupWorkflow", "step": "test_activity"}
    failures = REGISTRY.get_sample_value("onramp_step_failures_total", labels) or 0.0
    timed = REGISTRY.get_sample_value("onramp_step_duration_seconds_count", labels) or 0.0
    interceptor = StepMetricsInterceptor().intercept_activity(_Failing())
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, workflow_type="SignupWorkflow", activity_type="test_activity"
    )

    async def attempt() -> None:
        await interceptor.execute_activity(None)  # type: ignore[arg-type]

    with pytest.raises(ApplicationError):
        await environment.run(attempt)
    assert REGISTRY.get_sample_value("onramp_step_failures_total", labels) == failures + 1
    assert REGISTRY.get_sample_value("onramp_step_duration_seconds_count", labels) == timed + 1


async def test_a_stripe_error_is_counted_by_operation_and_code(
    spans: InMemorySpanExporter,
) -> None:
    labels = {"operation": "customers.retrieve", "code": "resource_missing"}
    before = REGISTRY.get_sample_value("onramp_stripe_errors_total", labels) or 0.0

    async def missing() -> None:
        raise stripe.InvalidRequestError(  # type: ignore[no-untyped-call]
            "No such customer", "id", code="resource_missing", http_status=404
        )

    with pytest.raises(ApplicationError):
        await call_stripe("customers.retrieve", missing())
    assert REGISTRY.get_sample_value("onramp_stripe_errors_total", labels) == before + 1
    (span,) = [s for s in spans.get_finished_spans() if s.name == "stripe.customers.retrieve"]
    assert span.kind == SpanKind.CLIENT
    assert span.attributes is not None
    assert span.attributes["stripe.error_code"] == "resource_missing"
    assert span.attributes["http.response.status_code"] == 404
    assert span.status.status_code == StatusCode.ERROR


def _worker_settings(**values: Any) -> WorkerSettings:
    return WorkerSettings.model_validate(
        {
            "database_url": SecretStr("postgresql://u@localhost/db"),
            "temporal_address": "127.0.0.1:7233",
            "stripe_secret_key": SecretStr("sk_test_x"),
            "onramp_token_secret": SecretStr("t" * 40),
            **values,
        }
    )


def test_worker_metrics_address_defaults_to_loopback_and_none_disables_it() -> None:
    assert _worker_settings().worker_metrics_address == "127.0.0.1:9464"
    assert _worker_settings(worker_metrics_address="none").worker_metrics_address is None
    assert _worker_settings().worker_sdk_metrics_address is None
    assert _worker_settings().otel_exporter_otlp_endpoint is None


def test_a_taken_metrics_address_leaves_the_worker_running() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert MetricsServer(f"127.0.0.1:{port}").start() is False
    server = MetricsServer(f"127.0.0.1:{port}")
    try:
        assert server.start() is True
    finally:
        server.stop()
