"""One journey is one trace: signup (`POST /v1/users`) → checkout → payment (Stripe's
webhook) → provisioning → the welcome email, with a span for every activity and every
Stripe call, and nothing personal or secret in any span."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.observability.conftest import OpenJourney
from tests.support.polling import until

pytestmark = pytest.mark.slow

# The steps of the journey, each of which must appear as a run of its activity.
JOURNEY_STEPS = {
    "insert_profile",
    "create_stripe_customer",
    "create_connect_account",
    "mark_user_active",
    "create_checkout_session",
    "record_checkout_state",
    "hand_over_subscription",
    "create_workspace",
    "issue_password_token",
    "send_email",
}


def _trace_of(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [
        span for span in spans if span.context is not None and span.context.trace_id == trace_id
    ]


def _activity(span: ReadableSpan) -> str | None:
    return span.name.removeprefix("RunActivity:") if span.name.startswith("RunActivity:") else None


def _dump(span: ReadableSpan) -> str:
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [(event.name, dict(event.attributes or {})) for event in span.events],
            "status": span.status.description,
        },
        default=str,
    )


async def test_one_journey_is_one_trace(
    journey_stack: OpenJourney, spans: InMemorySpanExporter
) -> None:
    async with journey_stack() as stack:
        user_id, address = await stack.signup()
        await stack.checkout_and_pay(user_id)
        await until(lambda: bool(stack.mail.to(address)), what="the welcome email")
        # The email step's span ends just after the message was accepted.
        await until(
            lambda: any(_activity(span) == "send_email" for span in spans.get_finished_spans()),
            what="the email step's span",
        )

    finished = spans.get_finished_spans()
    signup = [
        span for span in finished if span.kind == SpanKind.SERVER and span.name == "POST /v1/users"
    ]
    assert len(signup) == 1, [span.name for span in finished if span.kind == SpanKind.SERVER]
    assert signup[0].parent is None  # the journey starts here
    assert signup[0].context is not None
    journey = _trace_of(finished, signup[0].context.trace_id)

    # Every workflow and activity span of this user's workflows is in the journey. The
    # webhook dispatcher's signals are traces of their own (an event is not a request
    # of the journey), linked from the workflow's span for the signal.
    worker_side = ("RunWorkflow:", "RunActivity:", "StartActivity:", "HandleSignal:")
    for_user = [
        span
        for span in finished
        if user_id in str((span.attributes or {}).get("temporalWorkflowID", ""))
        and span.name.startswith(worker_side)
    ]
    strays = [span.name for span in for_user if span not in journey]
    assert not strays, strays
    signals = {
        span.context.span_id
        for span in finished
        if span.name.startswith(("SignalWorkflow:", "SignalWithStartWorkflow:"))
        and span.context is not None
        and span not in journey
    }
    handled = [span for span in journey if span.name.startswith("HandleSignal:")]
    assert any(link.context.span_id in signals for span in handled for link in span.links)
    steps = {_activity(span) for span in journey} - {None}
    assert steps >= JOURNEY_STEPS, JOURNEY_STEPS - steps

    # Every Stripe call made by the worker is a span of the journey, named by operation.
    stripe_calls = [span for span in finished if span.name.startswith("stripe.")]
    assert {span for span in stripe_calls} <= set(journey), [
        span.name for span in stripe_calls if span not in journey
    ]
    operations = Counter(span.name for span in stripe_calls)
    for operation in ("customers.create", "accounts.create", "checkout.sessions.create"):
        assert operations[f"stripe.{operation}"] >= 1, operations
    for call in stripe_calls:
        assert call.kind == SpanKind.CLIENT
        assert call.parent is not None and _activity(_parent(journey, call)) is not None

    # The checkout request is linked from the journey's continuation span.
    continued = [span for span in journey if span.name == "journey.checkout"]
    assert len(continued) == 1
    assert continued[0].links, "the checkout's request is linked"
    # Postgres statements are spans too, with their SQL and never their parameters.
    statements = [span for span in journey if "db.statement" in (span.attributes or {})]
    assert statements
    assert all("db.statement.parameters" not in (span.attributes or {}) for span in statements)

    # Nothing personal or secret anywhere: no email, no key, no token, no session URL,
    # no client address.
    assert not any("net.peer.ip" in (span.attributes or {}) for span in finished)
    everything = "\n".join(_dump(span) for span in finished)
    for forbidden in (address, "sk_test_", "whsec_", "token=", "checkout.stripe", "@example.com"):
        assert forbidden not in everything, forbidden


def _parent(spans: Sequence[ReadableSpan], span: ReadableSpan) -> ReadableSpan:
    """The nearest ancestor of `span` that is an activity run."""
    by_id = {item.context.span_id: item for item in spans if item.context is not None}
    current = span
    while current.parent is not None and current.parent.span_id in by_id:
        current = by_id[current.parent.span_id]
        if _activity(current) is not None:
            return current
    raise AssertionError(f"{span.name} has no activity above it")
