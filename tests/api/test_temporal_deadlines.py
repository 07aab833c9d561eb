"""Every wait on Temporal is bounded by the route's one deadline.

With Stripe frozen, `POST /v1/checkout` answered after 40-75 s and an upgrade after 50 s
although both waits were 30 s: `handle.result(rpc_timeout=…)` bounded each poll for the
update's outcome, not the wait. With a Temporal that accepts connections and never
answers, the routes must answer too. In both cases the answer is a 503 with Retry-After
by the deadline; the operation goes on in Temporal, and the same request again (same
`Idempotency-Key`) gets its real answer once it is there.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from devstack.stripe_catalog import ensure_catalog
from onramp.stripe_client import build_stripe_client
from tests.support.freezing import frozen, own_temporal, process_tree
from tests.support.harness import (
    STRIPE_TEST_KEY,
    auth,
    make_api_settings,
    make_worker_settings,
    open_app_client,
    temporal_address,
)
from tests.support.polling import eventually
from tests.support.stack import SandboxControl
from worker.build import WorkerDependencies, build_worker

pytestmark = pytest.mark.kill


# The routes' deadlines in these tests, and what an answer may take beyond them (the
# idempotency record's write after the deadline, a loaded test machine).
DEADLINE = 4.0
MARGIN = 2.0

Post = Callable[[], Awaitable[httpx.Response]]


async def _timed(post: Post) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await post()
    return response, time.monotonic() - started


def _assert_503_in_time(
    answer: tuple[httpx.Response, float], what: str, *, or_in_progress: bool = False
) -> None:
    response, seconds = answer
    assert seconds <= DEADLINE + MARGIN, f"{what} answered after {seconds:.1f} s"
    body = response.json()
    if or_in_progress and response.status_code == 409:
        assert body["error"]["code"] == "request_in_progress", (what, body)
    else:
        assert response.status_code == 503, (what, response.text)
        assert set(body) == {"error"} and body["error"]["code"] in (
            "operation_pending",
            "temporal_unavailable",
        ), (what, body)
    assert int(response.headers["Retry-After"]) >= 1, what


async def _until_answered(post: Post, seconds: float = 90.0) -> httpx.Response:
    """Repeat the same request, as a client honouring Retry-After does, until it is not
    a 503."""
    deadline = time.monotonic() + seconds
    while True:
        response = await post()
        if response.status_code != 503:
            return response
        assert time.monotonic() < deadline, f"still 503 after {seconds} s: {response.text}"
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))  # as it asks


_CLAIMS = "SELECT count(*) FROM api_idempotency_keys WHERE idempotency_key = $1"


class Api:
    """The API over ASGI with the short deadlines, and the requests of these tests."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def signup(self, email: str, key: str) -> Post:
        return lambda: self.client.post(
            "/v1/users",
            json={"email": email, "username": "deadline"},
            headers={**auth(), "Idempotency-Key": key},
        )

    def checkout(self, user_id: str, key: str) -> Post:
        return lambda: self.client.post(
            "/v1/checkout",
            json={"user_id": user_id, "tier": "pro", "billing_cycle": "monthly"},
            headers={**auth(), "Idempotency-Key": key},
        )

    def upgrade(self, user_id: str, key: str) -> Post:
        return lambda: self.client.post(
            f"/v1/users/{user_id}/subscription/upgrade",
            json={"tier": "pro", "payment_method": "pm_card_visa"},
            headers={**auth(), "Idempotency-Key": key},
        )

    async def active_user(self) -> str:
        email = f"deadline-{uuid.uuid4().hex[:10]}@example.com"
        answer = await _until_answered(self.signup(email, uuid.uuid4().hex))
        assert answer.status_code in (201, 202), answer.text
        user_id: str = answer.json()["id"]
        await self.wait_active(user_id)
        return user_id

    async def wait_active(self, user_id: str) -> None:
        deadline = time.monotonic() + 60
        while (await self.client.get(f"/v1/users/{user_id}", headers=auth())).json().get(
            "status"
        ) != "active":
            assert time.monotonic() < deadline, f"user {user_id} never became active"
            await asyncio.sleep(0.2)  # the poll interval of a wait on a condition


@pytest.fixture
async def catalog(sandbox_url: str) -> dict[str, str]:
    return await ensure_catalog(build_stripe_client(STRIPE_TEST_KEY, sandbox_url))


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxControl]:
    control = SandboxControl(sandbox_url)
    await control.clear_faults()
    try:
        yield control
    finally:
        await control.clear_faults()
        await control.aclose()


def _worker(
    client: Client,
    address: str,
    task_queue: str,
    database_url: str,
    sandbox_url: str,
    db_pool: asyncpg.Pool,
    catalog: dict[str, str],
) -> Any:
    settings = make_worker_settings(
        database_url, address, task_queue, stripe_api_base=sandbox_url
    ).model_copy(update={name.lower(): price for name, price in catalog.items()})
    return build_worker(
        client,
        task_queue,
        WorkerDependencies.build(settings, db_pool),
        graceful_shutdown=timedelta(seconds=1),
    )


def _api_settings(database_url: str, address: str, task_queue: str) -> Any:
    return make_api_settings(
        database_url,
        address,
        task_queue,
        signup_wait_seconds=DEADLINE,
        checkout_wait_seconds=DEADLINE,
        subscription_update_wait_seconds=DEADLINE,
        temporal_rpc_timeout_seconds=DEADLINE,
    )


async def test_a_frozen_temporal_answers_503_in_time_and_the_same_key_answers_later(
    database_url: str,
    db_pool: asyncpg.Pool,
    sandbox_url: str,
    sandbox: SandboxControl,
    catalog: dict[str, str],
    task_queue: str,
) -> None:
    async with own_temporal() as (address, server, client):
        worker = _worker(client, address, task_queue, database_url, sandbox_url, db_pool, catalog)
        async with worker:
            settings = _api_settings(database_url, address, task_queue)
            async for http in open_app_client(create_app(settings)):
                api = Api(http)
                # Two users signed up while Temporal answers (the API is connected).
                buyer, changer = await api.active_user(), await api.active_user()
                email = f"frozen-{uuid.uuid4().hex[:10]}@example.com"
                keys = {name: uuid.uuid4().hex for name in ("signup", "checkout", "upgrade")}
                requests = {
                    "signup": api.signup(email, keys["signup"]),
                    "checkout": api.checkout(buyer, keys["checkout"]),
                    "upgrade": api.upgrade(changer, keys["upgrade"]),
                }

                with frozen(process_tree(server.pid)):
                    answers = await asyncio.gather(*(_timed(post) for post in requests.values()))
                for what, answer in zip(requests, answers, strict=True):
                    _assert_503_in_time(answer, what)

                signed_up = await _until_answered(requests["signup"])
                assert signed_up.status_code in (201, 202), signed_up.text
                await api.wait_active(signed_up.json()["id"])
                # Once the signup has finished, the same request answers the user.
                again = await requests["signup"]()
                assert again.status_code == 201, again.text
                assert again.json()["id"] == signed_up.json()["id"]
                assert again.json()["email"] == email
                started = await _until_answered(requests["checkout"])
                assert started.status_code == 201, started.text
                assert started.json()["checkout_session_id"].startswith("cs_")
                upgraded = await _until_answered(requests["upgrade"])
                assert upgraded.status_code == 200, upgraded.text
                assert upgraded.json()["tier"] == "pro"

                # The answers are now the keys' answers: repeats replay them.
                again = await requests["checkout"]()
                assert again.headers.get("Idempotent-Replayed") == "true"
                assert again.json() == started.json()


@pytest.mark.parametrize(
    ("operation", "stripe_path"),
    [("checkout", "^/v1/checkout/sessions$"), ("upgrade", "^/v1/subscriptions$")],
)
async def test_a_hanging_stripe_call_answers_503_in_time_then_the_same_key_gets_the_result(
    database_url: str,
    db_pool: asyncpg.Pool,
    sandbox_url: str,
    sandbox: SandboxControl,
    catalog: dict[str, str],
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    operation: str,
    stripe_path: str,
) -> None:
    address = temporal_address(temporal_env)
    worker = _worker(
        temporal_env.client, address, task_queue, database_url, sandbox_url, db_pool, catalog
    )
    async with worker:
        settings = _api_settings(database_url, address, task_queue)
        async for http in open_app_client(create_app(settings)):
            api = Api(http)
            user_id = await api.active_user()
            key = uuid.uuid4().hex
            post: Post = getattr(api, operation)(user_id, key)
            # Stripe answers this one write only after two deadlines: after the first
            # request's and the repeated one's (sent at once), each with room to spare.
            await sandbox.add_fault(
                path=stripe_path, method="POST", delay_ms=int(DEADLINE * 2000), times=1
            )

            # A client that gives up early and sends the same request again while the
            # first still runs: each answer comes by its own deadline, not the sum of
            # the wait for the first and a wait of its own (which made a 30 s checkout
            # answer after 40-75 s).
            first = asyncio.create_task(_timed(post))
            await eventually(  # the first has claimed the key and runs
                partial(db_pool.fetchval, _CLAIMS, key), lambda claims: claims == 1, interval=0.02
            )
            repeated = await _timed(post)
            _assert_503_in_time(await first, operation)
            assert (await first)[0].json()["error"]["code"] == "operation_pending"
            _assert_503_in_time(repeated, f"the repeated {operation}", or_in_progress=True)

            answered = await _until_answered(post)
            assert answered.status_code in (200, 201), answered.text
            writes = [
                entry
                for entry in await sandbox.requests()
                if entry["method"] == "POST"
                and entry["path"] == stripe_path.strip("^$")
                and user_id in (entry["idempotency_key"] or "")
                and entry["status"] == 200
                and not entry["replayed"]
            ]
            assert len(writes) == 1, writes  # one operation, however often it was asked
