"""`onramp dev --example`: the example platform (`examples/platform/`) beside the stack.

Its worker serves onramp's provisioning hook (onramp's worker gets
`PROVISIONING_TASK_QUEUE`, default `example-platform`); its receiver is the target of an
event endpoint for every event type, made through the admin API like an operator makes
one. The endpoint's secret is answered once and goes to the receiver's environment only:
never to a log line or a file. The endpoint is kept across runs (found by its URL and
description, its secret rotated on each start), so what happened while the example was
not running is delivered on the next run. Both run by module path
(`python -m examples.platform …`): onramp's tooling imports nothing of the example.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devstack import supervisor
from devstack.processes import ChildProcess
from onramp.events import CATALOGUE
from onramp.settings import parse_api_keys

EXAMPLE_MODULE = "examples.platform"
EXAMPLE_DEFAULTS: dict[str, str] = {
    "ONRAMP_EXAMPLE_PORT": "8100",
    "PROVISIONING_TASK_QUEUE": "example-platform",
}
EXAMPLE_DESCRIPTION = "onramp dev --example: the example platform's receiver"
EVENT_TYPES = sorted(CATALOGUE)
ENDPOINTS = "/v1/admin/event-endpoints"


@dataclass
class Example:
    """Where the example platform runs, and the endpoint that delivers to it."""

    url: str
    task_queue: str
    store: Path
    endpoint_id: str | None = None

    @property
    def events_url(self) -> str:
        return f"{self.url}/onramp/events"


def start_example_worker(
    env: dict[str, str], children: list[ChildProcess], state_dir: Path
) -> Example:
    """Before onramp's worker starts: the hook's queue in `env`, the example's worker
    polling it."""
    if not (supervisor.ROOT / "examples" / "platform").is_dir():
        raise supervisor.StackError("--example runs from the repository (no examples/platform)")
    for name, value in EXAMPLE_DEFAULTS.items():
        env.setdefault(name, value)
    port = int(env["ONRAMP_EXAMPLE_PORT"])
    if not supervisor.port_is_free(port):
        raise supervisor.StackError(f"port {port} is in use: set ONRAMP_EXAMPLE_PORT")
    example = Example(
        url=f"http://127.0.0.1:{port}",
        task_queue=env["PROVISIONING_TASK_QUEUE"],
        store=state_dir.resolve() / "example-platform.db",
    )
    worker = _child("example-worker", ["worker"], _platform_env(env, example))
    children.append(worker.start())
    return example


def start_example_receiver(
    env: Mapping[str, str], children: list[ChildProcess], example: Example, api_url: str
) -> None:
    """Once the API answers: the endpoint (its secret), then the receiver holding it."""
    headers = {"Authorization": f"Bearer {_admin_key(env)}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=30) as api:
        example.endpoint_id, secret = endpoint_and_secret(api, example.events_url)
    receiver_env = {**_platform_env(env, example), "ONRAMP_EVENTS_SECRET": secret}
    port = example.url.rsplit(":", 1)[1]
    receiver = _child("example-receiver", ["receiver", "--port", port], receiver_env)
    children.append(receiver.start())
    supervisor.wait_for_http(example.events_url, receiver, timeout=30)


def banner_lines(example: Example) -> list[str]:
    return [
        "  example platform (examples/platform/)",
        f"    events     GET {example.events_url} (endpoint {example.endpoint_id}, "
        f"{len(EVENT_TYPES)} event types)",
        f"    tenants    GET {example.url}/tenants (provisioning hook on task queue "
        f"{example.task_queue})",
        f"    its data   {example.store}",
    ]


def _child(name: str, args: list[str], env: Mapping[str, str]) -> ChildProcess:
    argv = [sys.executable, "-m", EXAMPLE_MODULE, *args]
    return ChildProcess(name, argv, env=env, cwd=supervisor.ROOT)


def _platform_env(env: Mapping[str, str], example: Example) -> dict[str, str]:
    """The platform's own configuration: where Temporal is, its queue and its data. Of
    onramp's secrets it gets only the payload keys, which the hook's payloads need (the
    other dev defaults are not in `os.environ`)."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TEMPORAL_ADDRESS": env["TEMPORAL_ADDRESS"],
        "TEMPORAL_NAMESPACE": env.get("TEMPORAL_NAMESPACE", "default"),
        "PLATFORM_TASK_QUEUE": example.task_queue,
        "PLATFORM_DB": str(example.store),
        "PLATFORM_PUBLIC_URL": example.url,
        # The platform's worker decodes what onramp's worker encrypts (the sample codec).
        "ONRAMP_PAYLOAD_KEYS": env.get("ONRAMP_PAYLOAD_KEYS", ""),
    }


def _admin_key(env: Mapping[str, str]) -> str:
    for entry in parse_api_keys(env["ONRAMP_API_KEYS"]):
        if entry.scope == "admin":
            return entry.key.get_secret_value()
    raise supervisor.StackError("--example needs an admin key in ONRAMP_API_KEYS")


def endpoint_and_secret(api: httpx.Client, url: str) -> tuple[str, str]:
    """The example's endpoint for `url` (kept from an earlier run, or made now) and a
    secret only this run knows; `api` carries an admin key."""
    listed = _answer(api.get(ENDPOINTS), 200)["data"]
    kept = [
        endpoint
        for endpoint in listed
        if endpoint["url"] == url
        and endpoint["description"] == EXAMPLE_DESCRIPTION
        and sorted(endpoint["event_types"]) == EVENT_TYPES
    ]
    if not kept:
        wanted = {"url": url, "event_types": EVENT_TYPES, "description": EXAMPLE_DESCRIPTION}
        made = _answer(api.post(ENDPOINTS, json=wanted), 201)
        return made["id"], made["secret"]
    endpoint_id = kept[0]["id"]
    # The old secret signs beside the new one for a while; this receiver needs only the
    # new one.
    rotated = _answer(api.post(f"{ENDPOINTS}/{endpoint_id}/rotate-secret"), 200)
    if kept[0]["status"] == "paused":
        _answer(api.post(f"{ENDPOINTS}/{endpoint_id}/resume"), 200)
    return endpoint_id, rotated["secret"]


def _answer(response: httpx.Response, expected: int) -> Any:
    if response.status_code != expected:
        # The error shape carries no secret; a successful answer may, so only this prints.
        raise supervisor.StackError(
            f"the admin API answered {response.status_code} to {response.request.method} "
            f"{response.request.url.path}: {response.text[:300]}"
        )
    return response.json()
