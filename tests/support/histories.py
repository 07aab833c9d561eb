"""Record workflow histories from real test runs for the replay tests (tests/replay/).

Recording is opt-in: `ONRAMP_RECORD_HISTORIES=1 make pytest` (or pytest on the tests
that call this) rewrites tests/replay/histories/<name>.json from the run. Commit the
files only when a workflow changed on purpose (see docs/REPLAY.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from temporalio.client import Client

HISTORIES = Path(__file__).resolve().parents[1] / "replay" / "histories"


async def record_history(client: Client, workflow_id: str, name: str) -> None:
    """Save the history of `workflow_id` as `<name>.json` when recording is on."""
    if os.environ.get("ONRAMP_RECORD_HISTORIES") != "1":
        return
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    document = {"workflow_id": workflow_id, "history": history.to_json_dict()}
    HISTORIES.mkdir(parents=True, exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")
