"""Fuzz every operation of the HTTP API with schemathesis against a running stack.

The app is served over real HTTP by uvicorn, with the real worker, the Stripe sandbox,
Postgres and the Temporal dev server behind it. Schemathesis reads `/openapi.json` from
that server and generates path parameters, queries, headers and bodies for each
operation, in four passes:

- valid requests with the admin key (admin may do what a client may, so every route is
  reached),
- invalid requests (schemathesis' negative mode) with the admin key,
- valid requests for the operations on one user, with the id of a real, active user
  (so the workflows behind them run, not only the 404 for an unknown id),
- a few requests without any `Authorization` header (401s, and the public routes).

Every answer must be below 500, every error must be the one shape
`{"error": {"code": "...", "message": "..."}}` (api/errors.py), and schemathesis'
conformance checks (documented status, content type, response schema and headers) must
hold. All problems are collected and reported together.

`ONRAMP_FUZZ_EXAMPLES` sets the examples per operation and pass (default 10: the suite's
run checks that every operation and pass is reached and answered within the rules; the
depth comes from `bench/fuzz_api.py`, which runs this test with 200);
`ONRAMP_FUZZ_REPORT` names a JSON file the figures are written to
(`bench/fuzz_api.py` runs this test with more examples and prints them).

Why a thread: schemathesis sends its requests with blocking `requests` calls, while the
server and the worker run on this test's event loop; the fuzzing runs in a thread so
that the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, CheckFunction, GenerationMode, Response
from schemathesis import Case as GenericCase
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from tests.support.api_server import serve_app
from tests.support.harness import ADMIN_KEY, auth
from tests.support.stack import Stack

pytestmark = pytest.mark.slow


Case = GenericCase[Any]
Operation = APIOperation[Any, Any, Any, Any]

EXAMPLES = int(os.environ.get("ONRAMP_FUZZ_EXAMPLES", "10"))
REPORT = os.environ.get("ONRAMP_FUZZ_REPORT")
REQUEST_TIMEOUT_SECONDS = 60.0

# Schemathesis' own checks of each answer against the schema (server errors and the error
# shape are checked here, so that they are counted on their own).
CHECKS: list[CheckFunction] = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# Keys an error body may carry beside "error" (api/errors.py `extra=`): only /readyz
# adds its checks to the 503, so that an operator sees what is missing.
ERROR_EXTRA_KEYS: dict[str, frozenset[str]] = {
    "GET /readyz": frozenset({"status", "checks"}),
    # 409 payment_method_required names where the user goes instead (Checkout).
    "POST /v1/users/{user_id}/subscription/upgrade": frozenset({"next_action"}),
}


@dataclass(frozen=True)
class Problem:
    kind: str  # server_error | error_shape | conformance | transport
    operation: str
    detail: str
    status: int | None
    request: str
    body: str


@dataclass
class FuzzRun:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for problem in self.problems if problem.kind == kind)

    def summary(self, seconds: float) -> dict[str, Any]:
        return {
            "examples_per_operation": EXAMPLES,
            "operations": len(self.operations),
            "requests": self.requests,
            "server_errors": self.count("server_error"),
            "shape_violations": self.count("error_shape"),
            "conformance_failures": self.count("conformance"),
            "transport_errors": self.count("transport"),
            "statuses": self._statuses(),
            "seconds": round(seconds, 1),
        }

    def _statuses(self) -> dict[str, dict[str, int]]:
        by_operation: dict[str, dict[str, int]] = {}
        for (operation, status), n in sorted(self.statuses.items()):
            by_operation.setdefault(operation, {})[str(status)] = n
        return by_operation


def error_shape_problem(operation: str, response: Response) -> str | None:
    """Why an error answer is not the one error shape, or None when it is."""
    try:
        body = response.json()
    except ValueError:
        return f"not JSON ({response.headers.get('content-type', ['?'])[0]})"
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return "no `error` object"
    extra = set(body) - {"error"} - ERROR_EXTRA_KEYS.get(operation, frozenset())
    if extra:
        return f"unexpected top-level keys {sorted(extra)}"
    error = body["error"]
    if set(error) != {"code", "message"}:
        return f"`error` has keys {sorted(error)}, not exactly code and message"
    if not isinstance(error["code"], str) or not error["code"]:
        return "`error.code` is not a non-empty string"
    if not isinstance(error["message"], str):
        return "`error.message` is not a string"
    return None


def _describe(case: Case, headers: dict[str, str] | None) -> str:
    try:
        return case.as_curl_command(headers=headers)
    except Exception:  # a request that cannot even be rendered: say what we know
        return f"{case.method} {case.formatted_path} query={case.query!r}"


def _send(run: FuzzRun, case: Case, base_url: str, headers: dict[str, str] | None) -> None:
    """Send one case and check its answer; every problem found is recorded, none raised."""
    label = case.operation.label
    run.requests += 1
    try:
        response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
    except Exception as error:  # the server dropped the connection or never answered
        run.problems.append(
            Problem("transport", label, repr(error), None, _describe(case, headers), "")
        )
        return
    status = response.status_code
    run.statuses[label, status] += 1
    found: list[tuple[str, str]] = []
    if status >= 500:
        found.append(("server_error", "status >= 500"))
    if status >= 400:
        why = error_shape_problem(label, response)
        if why is not None:
            found.append(("error_shape", why))
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        found += [("conformance", f"{each.title}: {each.message}") for each in group.exceptions]
    if found:
        request, body = _describe(case, headers), response.text_lossy()[:600]
        run.problems += [Problem(kind, label, why, status, request, body) for kind, why in found]


def fuzz_operation(
    run: FuzzRun,
    operation: Operation,
    *,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str] | None,
    path_parameters: dict[str, str] | None = None,
    prepare: Callable[[Case], None] | None = None,
) -> None:
    """Send `examples` generated requests for one operation; record what went wrong."""
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same requests on every run: CI is reproducible
        database=None,
        phases=[Phase.explicit, Phase.generate],  # nothing fails, so nothing to shrink
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def send(case: Case) -> None:
        if prepare is not None:
            prepare(case)
        _send(run, case, base_url, headers)

    try:
        send()
    except Unsatisfiable:
        # Negative mode on an operation without any input: there is nothing to negate.
        if mode is not GenerationMode.NEGATIVE:
            raise
    run.operations.add(operation.label)


def _drop_authorization(case: Case) -> None:
    if case.headers:
        for name in [name for name in case.headers if name.lower() == "authorization"]:
            del case.headers[name]


def fuzz_api(base_url: str, user_id: str, examples: int) -> FuzzRun:
    """Every operation of the served schema, in the passes the module docstring names."""
    # An explicit config (no schemathesis.toml is looked for); the report shows the
    # requests as sent, tokens and ids included: they are test data.
    config = schemathesis.Config.from_dict({"output": {"sanitization": {"enabled": False}}})
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    admin = auth(ADMIN_KEY)
    run = FuzzRun()
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()  # the served schema cannot be read: nothing to fuzz
        operations.append(result.ok())
    for operation in operations:
        common: dict[str, Any] = {"examples": examples, "base_url": base_url}
        fuzz_operation(run, operation, mode=GenerationMode.POSITIVE, headers=admin, **common)
        fuzz_operation(run, operation, mode=GenerationMode.NEGATIVE, headers=admin, **common)
        if "{user_id}" in operation.path:
            fuzz_operation(
                run,
                operation,
                mode=GenerationMode.POSITIVE,
                headers=admin,
                path_parameters={"user_id": user_id},
                **common,
            )
        fuzz_operation(
            run,
            operation,
            mode=GenerationMode.POSITIVE,
            headers=None,
            prepare=_drop_authorization,
            examples=max(3, examples // 5),
            base_url=base_url,
        )
    return run


def _report(run: FuzzRun) -> str:
    """One message with every distinct problem: how often, and one request that shows it."""
    groups: dict[tuple[str, str, int | None, str], list[Problem]] = {}
    for problem in run.problems:
        key = (problem.kind, problem.operation, problem.status, problem.detail.split("\n")[0])
        groups.setdefault(key, []).append(problem)
    lines = [f"{len(run.problems)} problems in {run.requests} requests:"]
    for (kind, operation, status, _), problems in groups.items():
        sample = problems[0]
        lines += [
            f"\n[{kind}] {operation} -> {status} ({len(problems)}x): {sample.detail}",
            f"  request: {sample.request}",
            f"  body: {sample.body}",
        ]
    return "\n".join(lines)


async def _active_user(api: httpx.AsyncClient) -> str:
    """A signed-up user, so that the routes on one user get past their 404."""
    response = await api.post(
        "/v1/users",
        json={"email": f"fuzz-{uuid.uuid4().hex[:12]}@example.com", "username": "fuzz"},
        headers=auth(),
    )
    assert response.status_code == 201, response.text
    user_id: str = response.json()["id"]
    return user_id


async def test_fuzz_every_operation(stack: Stack) -> None:
    user_id = await _active_user(stack.api)
    started = time.monotonic()
    async with serve_app(create_app(stack.settings)) as base_url:
        run = await asyncio.to_thread(fuzz_api, base_url, user_id, EXAMPLES)
    summary = run.summary(time.monotonic() - started)
    if REPORT:
        await asyncio.to_thread(Path(REPORT).write_text, json.dumps(summary, indent=2) + "\n")
    assert not run.problems, _report(run)
    # Every operation of the schema was reached and answered.
    answered = {operation for operation, _ in run.statuses}
    assert answered == run.operations and len(answered) >= 20, summary
