"""Logs with event names and ids, and a filter that keeps secrets out of them.

Log with :func:`log_event` so that operators can search by event name
(`WEBHOOK_RECEIVED`, `PROVISIONING_FAILED`, …) and by ids (user, workflow, event).
Production writes JSON lines; `onramp dev` writes compact lines a person reads
(`log_format="console"`), masked by the same rules.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["json", "console"]

# Anything shaped like a Stripe key or signing secret, a bearer credential or a URL
# password is masked wherever it appears, as a last line of defence.
_SECRET_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+"), "[REDACTED]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "[REDACTED]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+"), r"\1[REDACTED]"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[REDACTED]@"),
]
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str) -> str:
    """Mask secrets in free text."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event/message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        entry.update(trace_ids())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def trace_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the span current where the line was logged (none
    without tracing): the line is found from the trace and the trace from the line."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return {}
    return {
        "trace_id": format(span_context.trace_id, "032x"),
        "span_id": format(span_context.span_id, "016x"),
    }


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller passed (`extra=`), without the record's own."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RESERVED and not key.startswith("_")
    }


_TEMPORAL_CONTEXT = frozenset({"temporal_workflow", "temporal_activity"})


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL process EVENT key=value …`: one short line for a person's console.

    `process` is the logger's top-level name (`api`, `worker`, `temporalio`, …), which
    tells apart the processes `onramp dev` runs in one terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        event = str(fields.pop("event", record.getMessage()))
        process = record.name.split(".", 1)[0]
        # Temporal's workflow and activity loggers append their whole context to the
        # message (" ({'attempt': 1, …})") and again as a field; the line already names
        # the workflow or user it is about, so a person gets neither copy.
        if _TEMPORAL_CONTEXT & fields.keys():
            for key in _TEMPORAL_CONTEXT:
                fields.pop(key, None)
            event = event.split(" ({", 1)[0]
            process = "worker"
        clock = datetime.fromtimestamp(record.created, UTC).astimezone().strftime("%H:%M:%S")
        parts = [clock, f"{record.levelname:<7}", process, event]
        parts += [f"{key}={_console_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Quoted only when needed, so the common case stays easy to read.
    return json.dumps(text) if (not text or any(c.isspace() or c == '"' for c in text)) else text


def configure_logging(level: str = "INFO", log_format: LogFormat = "json") -> None:
    """Send every logger's records to stderr: JSON lines, or console lines for a person."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter() if log_format == "console" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request access lines and client chatter are noise next to our own events.
    for noisy in ("uvicorn.access", "httpx", "httpcore", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with structured fields (`event` is the message)."""
    logger.log(level, event, extra={"event": event, **fields})
