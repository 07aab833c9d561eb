"""What a Stripe event body must look like to be stored and routed.

Only the envelope is checked (id, type, created, livemode, account, data.object); the
object itself is kept as a plain dict, because workflows re-read it from Stripe anyway
and its shape depends on the API version of the sending account.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, StrictInt, ValidationError

from api.json_limits import nesting_depth
from onramp.repositories.webhook_events import NewInboxEvent
from workflows.contracts.common import StripeEventSignal


class InvalidEvent(ValueError):
    """The body is not UTF-8, not JSON, or not a Stripe event."""


class EventData(BaseModel):
    object: dict[str, Any]


# Deeper than any Stripe object nests (a handful of levels), far below where Python's
# recursive JSON parser and the objects it builds become the cost.
MAX_EVENT_DEPTH = 64

# The last second a datetime (and Postgres' timestamptz, comfortably) can hold.
LATEST_TIMESTAMP = 253_402_300_799


class StripeEvent(BaseModel):
    """The envelope of a Stripe (v1, snapshot) event."""

    id: str = Field(pattern=r"^evt_[A-Za-z0-9_]+$", max_length=255)
    type: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=255)
    # Unix seconds, an integer as Stripe sends it: `1e20` (a float) or a year past 9999
    # cannot become a datetime.
    created: StrictInt = Field(ge=0, le=LATEST_TIMESTAMP)
    livemode: bool
    account: str | None = Field(default=None, pattern=r"^acct_[A-Za-z0-9]+$", max_length=255)
    api_version: str | None = Field(default=None, max_length=64)
    data: EventData

    @property
    def object(self) -> dict[str, Any]:
        return self.data.object

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)

    def to_inbox(self, raw_body: bytes) -> NewInboxEvent:
        return NewInboxEvent(
            event_id=self.id,
            type=self.type,
            livemode=self.livemode,
            account=self.account,
            api_version=self.api_version,
            created=self.created_at,
            raw_body=raw_body,
        )

    def to_signal(self) -> StripeEventSignal:
        """The trigger a workflow receives: ids only, never the object."""
        object_id = self.object.get("id")
        object_type = self.object.get("object")
        return StripeEventSignal(
            event_id=self.id,
            type=self.type,
            created=self.created_at,
            livemode=self.livemode,
            account=self.account,
            object_id=object_id if isinstance(object_id, str) else "",
            object_type=object_type if isinstance(object_type, str) else "",
        )


def decode_body(raw_body: bytes) -> str:
    try:
        return raw_body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidEvent("Webhook body is not UTF-8") from error


def parse_event(text: str) -> StripeEvent:
    """Parse a verified body; raise :class:`InvalidEvent` with a client-safe message."""
    if nesting_depth(text) > MAX_EVENT_DEPTH:
        raise InvalidEvent(f"Webhook body nests deeper than {MAX_EVENT_DEPTH} levels")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise InvalidEvent("Webhook body is not valid JSON") from error
    if not isinstance(document, dict) or document.get("object", "event") != "event":
        raise InvalidEvent("Webhook body is not a Stripe event")
    try:
        return StripeEvent.model_validate(document)
    except ValidationError as error:
        fields = sorted(
            {".".join(str(part) for part in problem["loc"]) for problem in error.errors()}
        )
        raise InvalidEvent(
            f"Webhook body is not a Stripe event (bad or missing: {', '.join(fields)})"
        ) from error
