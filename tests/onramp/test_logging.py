"""Log lines: JSON for production, console lines for a person; secrets masked in both."""

from __future__ import annotations

import json
import logging
import re

import pytest

from onramp.logging import ConsoleFormatter, JsonFormatter, configure_logging

SECRET = "sk_test_" + "abc123DEF456"


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "api.webhooks.ingress", logging.INFO, __file__, 1, "WEBHOOK_RECEIVED", None, None
    )
    for key, value in {"event": "WEBHOOK_RECEIVED", **fields}.items():
        setattr(record, key, value)
    return record


def test_console_line_is_time_level_process_event_and_fields() -> None:
    line = ConsoleFormatter().format(
        _record(event_id="evt_1", account=None, reason="not handled here", attempts=3)
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO    api WEBHOOK_RECEIVED event_id=evt_1 account=null "
        r'reason="not handled here" attempts=3',
        line,
    ), line


def test_console_and_json_mask_the_same_secrets() -> None:
    record = _record(key=SECRET, header=f"Bearer {SECRET}", dsn="postgres://u:pw@host/db")
    console = ConsoleFormatter().format(record)
    as_json = JsonFormatter().format(record)
    for text in (console, as_json):
        assert SECRET not in text
        assert ":pw@" not in text
    assert json.loads(as_json)["key"] == "[REDACTED]"
    assert "key=[REDACTED]" in console


def test_a_message_without_an_event_name_is_the_event() -> None:
    record = logging.LogRecord(
        "temporalio.worker", logging.WARNING, __file__, 1, "slow %s", ("poll",), None
    )
    line = ConsoleFormatter().format(record)
    assert line.endswith("WARNING temporalio slow poll"), line


@pytest.mark.parametrize(
    ("log_format", "formatter"), [("json", JsonFormatter), ("console", ConsoleFormatter)]
)
def test_configure_logging_chooses_the_format(log_format: str, formatter: type) -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("INFO", log_format)  # type: ignore[arg-type]
        assert isinstance(root.handlers[0].formatter, formatter)
    finally:
        root.handlers[:], root.level = saved, level


def test_json_stays_the_default() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_a_workflow_line_drops_temporals_appended_context() -> None:
    context = {"workflow_id": "checkout-u1", "run_id": "r1", "attempt": 1}
    record = logging.LogRecord(
        "temporalio.workflow",
        logging.INFO,
        __file__,
        1,
        f"PROVISIONING_COMPLETED ({context})",
        None,
        None,
    )
    record.temporal_workflow = context
    record.user_id = "u1"
    line = ConsoleFormatter().format(record)
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    worker PROVISIONING_COMPLETED user_id=u1", line), (
        line
    )
