"""Record workflow histories from real test runs for the replay tests (tests/replay/).

Recording is opt-in: `ONRAMP_RECORD_HISTORIES=1 make pytest` (or pytest on the tests
that call this) rewrites tests/replay/histories/<name>.json from the run. Commit the
files only when a workflow changed on purpose (see docs/REPLAY.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from workflows.local_steps import LOCAL_ACTIVITY_MARKER

HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories"


async def record_history(client: Client, workflow_id: str, name: str) -> None:
    """Save the history of `workflow_id` as `<name>.json` when recording is on."""
    if os.environ.get("ONRAMP_RECORD_HISTORIES") != "1":
        return
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    document = {"workflow_id": workflow_id, "history": history.to_json_dict()}
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


async def activity_executions(client: Client, workflow_id: str) -> list[tuple[str, Any]]:
    """(activity type, result) of every activity of a run, in history order: regular
    activities where they were scheduled (result None until completed), local ones where
    their result was recorded. Keyed by event id: the scheduled event's, or the marker's."""
    names: dict[int, str] = {}
    results: dict[int, Any] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            names[event.event_id] = attributes.activity_type.name
        elif event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            results[completed.scheduled_event_id] = await _decode(client, completed.result.payloads)
        elif event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                # `data` names the activity type; `result` holds its result.
                data = json.loads(marker.details["data"].payloads[0].data)
                names[event.event_id] = str(data["activity_type"])
                if "result" in marker.details:
                    results[event.event_id] = await _decode(
                        client, marker.details["result"].payloads
                    )
    return [(name, results.get(event_id)) for event_id, name in names.items()]


async def activity_steps(client: Client, workflow_id: str) -> list[str]:
    """The activity types a run executed, in history order (local ones included)."""
    return [name for name, _ in await activity_executions(client, workflow_id)]


async def _decode(client: Client, payloads: Sequence[Payload]) -> Any:
    # Through the client's codec first: the tests' payloads are encrypted.
    codec = client.data_converter.payload_codec
    plain = await codec.decode(payloads) if codec is not None else list(payloads)
    return json.loads(plain[0].data) if plain and plain[0].data else None
