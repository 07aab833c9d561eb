"""OpenTelemetry traces of one process, and the journey a user's operations continue.

Tracing is on in a process only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (spans go out
by OTLP over HTTP, batched) or a test installs its own exporter. Off, nothing is
instrumented and no interceptor is added: the OpenTelemetry API's no-op tracer costs a
context lookup.

On, the API's requests (FastAPI), every Temporal call and workflow/activity step (the
SDK's `TracingInterceptor`, context carried in Temporal headers), onramp's Stripe calls
(`stripe.<operation>` spans in the gateway) and every Postgres statement (asyncpg, the
SQL with its `$n` placeholders, never the parameters) are spans. What leaves the process
passes :class:`RedactingExporter`: no query string (tokens travel there), no client
address, URLs reduced to their route template, emails and secrets masked in every
attribute, event and status.

A journey — signup, then checkout, payment, provisioning, the welcome email — crosses
several HTTP requests. The signup's trace is its trace: the profile step stores its
`traceparent` on the user's row (ids only: a trace id and a span id), and a later
operation for that user runs inside :func:`continue_journey`, a span in the journey's
trace linked to the request that caused it. The workflows it starts carry that context
in their Temporal headers, so their activities and Stripe calls land in the journey.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes, AttributeValue
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from onramp.logging import log_event, redact

logger = logging.getLogger(__name__)

TRACER_NAME = "onramp"
_TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PROPAGATOR = TraceContextTextMapPropagator()
# Attributes that hold a URL or its parts: the query goes, the path becomes the route.
_PATH_KEYS = frozenset({"http.target", "url.path"})
_URL_KEYS = frozenset({"http.url", "url.full"})
# Queries carry tokens; a client's address is an end user's personal data.
_DROPPED_KEYS = frozenset(
    {
        "url.query",
        "http.request.header.authorization",
        "net.peer.ip",
        "net.peer.port",
        "http.client_ip",
        "client.address",
        "client.port",
        "network.peer.address",
        "network.peer.port",
    }
)


class _State:
    provider: TracerProvider | None = None
    exporters: list[SpanExporter] = []
    endpoints: set[str] = set()
    enabled = False
    asyncpg_instrumented = False


def enabled() -> bool:
    """True when this process records spans."""
    return _State.enabled


def configure(
    service_name: str, endpoint: str | None, *, exporter: SpanExporter | None = None
) -> bool:
    """Turn tracing on for this process when an OTLP endpoint (or, in tests, an
    exporter) is given; True when it is on. Safe to call again: one provider per
    process, as OpenTelemetry requires, and an exporter is added once."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return _State.enabled
    if exporter is None and endpoint and endpoint not in _State.endpoints:
        exporter = _otlp_exporter(endpoint)
        _State.endpoints.add(endpoint)
    if exporter is None and endpoint not in _State.endpoints:
        return _State.enabled
    if exporter is not None and all(exporter is not known for known in _State.exporters):
        # An endpoint batches (exported off the request path); a test's exporter sees
        # each span as it ends.
        wrapped = RedactingExporter(exporter)
        processor = (
            SimpleSpanProcessor(wrapped) if endpoint is None else BatchSpanProcessor(wrapped)
        )
        _provider(service_name).add_span_processor(processor)
        _State.exporters.append(exporter)
        log_event(logger, "TRACING_ENABLED", service=service_name, otlp=bool(endpoint))
    _instrument_asyncpg()
    _State.enabled = True
    return True


def disable() -> None:
    """Stop instrumenting new clients and apps (tests; spans already started finish)."""
    if _State.asyncpg_instrumented:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
        _State.asyncpg_instrumented = False
    _State.enabled = False


def shutdown() -> None:
    """Flush and stop exporting (end of the process)."""
    if _State.provider is not None:
        _State.provider.shutdown()


def _otlp_exporter(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # As the OTel SDK reads the standard variables: a signal-specific endpoint is used
    # as it is, the general one gets the signal's path.
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        f"{endpoint.rstrip('/')}/v1/traces"
    )
    return OTLPSpanExporter(endpoint=traces)


def _provider(service_name: str) -> TracerProvider:
    if _State.provider is None:
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES still apply (Resource.create).
        resource = Resource.create({"service.name": service_name})
        _State.provider = TracerProvider(resource=resource, sampler=StatementsInsideSpans())
        trace.set_tracer_provider(_State.provider)
    return _State.provider


class StatementsInsideSpans(Sampler):
    """A Postgres statement is traced inside another span (a request, a step) only:
    the background polls (the inbox dispatcher's claims, the system monitor) would
    otherwise start a trace of one statement every second. Everything else is decided
    by the configured sampler (`OTEL_TRACES_SAMPLER`, default: parent-based, always on)."""

    def __init__(self) -> None:
        self.configured = sampling._get_from_env_or_default()

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and attributes and "db.system" in attributes:
            return SamplingResult(Decision.DROP)
        return self.configured.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"StatementsInsideSpans{{{self.configured.get_description()}}}"


def _instrument_asyncpg() -> None:
    if _State.asyncpg_instrumented:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    # Statements only: parameters hold emails and ids and are never captured.
    instrumentor = AsyncPGInstrumentor(capture_parameters=False)  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=_State.provider)
    _State.asyncpg_instrumented = True


def temporal_interceptors() -> list[Interceptor]:
    """The interceptors of a Temporal client: the SDK's tracing one when tracing is on
    (a worker built on the client inherits it for workflows and activities)."""
    return [TracingInterceptor()] if _State.enabled else []


def tracer() -> trace.Tracer:
    """onramp's tracer; a no-op one while tracing is off (a provider set up by another
    library, or by a test that has ended, records nothing of ours)."""
    return trace.get_tracer(TRACER_NAME) if _State.enabled else _NO_OP


_NO_OP = trace.NoOpTracer()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, when one is recording."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    value = carrier.get("traceparent")
    return value if value and _TRACEPARENT.match(value) else None


@contextmanager
def continue_journey(
    traceparent: str | None, name: str, **attributes: AttributeValue
) -> Iterator[None]:
    """Run the block in a span of the user's journey (the stored `traceparent`), linked
    to the current span (the request that asked for it). Without tracing, or without a
    stored journey, the block runs in the current context unchanged."""
    if not _State.enabled or not traceparent or not _TRACEPARENT.match(traceparent):
        yield
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent})
    caller = trace.get_current_span().get_span_context()
    links = [Link(caller)] if caller.is_valid else []
    with tracer().start_as_current_span(name, context=parent, links=links, attributes=attributes):
        yield


@contextmanager
def span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, **attributes: AttributeValue
) -> Iterator[trace.Span]:
    """A span of onramp's own (a Stripe call), with status and exception recorded."""
    with tracer().start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


class RedactingExporter(SpanExporter):
    """Hands spans on without what must not leave the process: query strings (tokens),
    full URLs (reduced to the route template), emails and secrets (masked)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def scrub(text: str) -> str:
    """Emails and secrets masked in free text."""
    return _EMAIL.sub("[EMAIL]", redact(text))


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, tuple | list):
        return tuple(_scrub_value(item) for item in value)
    return value


def redacted_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A span's attributes as they may be exported (see :class:`RedactingExporter`)."""
    values = dict(attributes or {})
    route = values.get("http.route")
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if key in _DROPPED_KEYS:
            continue
        if key in _PATH_KEYS and isinstance(value, str):
            value = route if isinstance(route, str) else value.split("?", 1)[0]
        elif key in _URL_KEYS and isinstance(value, str):
            base = value.split("?", 1)[0]
            if isinstance(route, str):
                base = re.sub(r"^(\w+://[^/]+).*$", lambda m: m.group(1) + route, base)
            value = base
        cleaned[key] = _scrub_value(value)
    return cleaned


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    events = [
        Event(event.name, redacted_attributes(event.attributes), event.timestamp)
        for event in span.events
    ]
    status = span.status
    if status.description:
        status = Status(status.status_code, scrub(status.description))
    return ReadableSpan(
        name=scrub(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redacted_attributes(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
