"""Connect as platforms configure it, on the time-skipping server with real activities.

Accounts are created with `controller` properties and `CONNECT_CAPABILITIES`;
"complete" follows those capabilities; polling backs off from minutes to hours and
starts over when the user comes back; a re-read that Stripe refuses for a long while
leaves the run open and shows the stuck step, and the run completes on its own once
Stripe answers again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import stripe
from temporalio.testing import WorkflowEnvironment

from tests.onboarding.conftest import SkippingOnboarding, skipping_onboarding
from tests.support.harness import STRIPE_TEST_KEY
from tests.support.histories import record_history
from workflows import errors
from workflows.contracts.onboarding import ONBOARDING_RETURNED_UPDATE, OnboardingReturnedInput
from workflows.contracts.onboarding import OnboardingWorkflowStatus as Status

MINUTE = 60.0
HOUR = 3600.0


@pytest.fixture
async def onboarding(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    db_pool: asyncpg.Pool,
    sandbox_url: str,
    task_queue: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[SkippingOnboarding]:
    capabilities = getattr(request, "param", "card_payments,transfers")
    async with skipping_onboarding(
        time_skipping_env, database_url, db_pool, sandbox_url, task_queue,
        capabilities=capabilities,
    ) as run:  # fmt: skip
        yield run


def _stripe(sandbox_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        STRIPE_TEST_KEY,
        base_addresses={"api": sandbox_url},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
    )


async def _token_status(pool: asyncpg.Pool, token_id: str) -> str:
    status: str = await pool.fetchval(
        "SELECT status FROM onboarding_tokens WHERE id = $1", token_id
    )
    return status


@pytest.mark.slow
async def test_polling_backs_off_from_minutes_to_hours_and_starts_over_on_return(
    onboarding: SkippingOnboarding, db_pool: asyncpg.Pool
) -> None:
    opened = await onboarding.open_link()

    # Nobody finishes and no webhook comes: 12 quiet hours of polling.
    await onboarding.env.sleep(timedelta(hours=12))

    waits = await onboarding.poll_timers()
    assert len(waits) == 10  # 12 h: nine fired (8 h 15 min), the tenth running
    assert waits[:10] == [
        1 * MINUTE, 2 * MINUTE, 4 * MINUTE, 8 * MINUTE, 16 * MINUTE, 32 * MINUTE,
        64 * MINUTE, 128 * MINUTE, 4 * HOUR, 4 * HOUR,
    ]  # fmt: skip
    status = await onboarding.status()
    assert status.poll_interval_seconds == 4 * HOUR
    assert [t.status for t in status.tokens] == ["in_progress"]

    # The user comes back from Stripe (not finished): polling starts over at a minute.
    returned = await onboarding.handle.execute_update(
        ONBOARDING_RETURNED_UPDATE,
        OnboardingReturnedInput(token_id=onboarding.token_id),
        result_type=Status,
    )
    assert returned.poll_interval_seconds == 1 * MINUTE
    await onboarding.env.sleep(timedelta(minutes=4))
    since_return = (await onboarding.poll_timers())[len(waits) :]
    assert since_return[:2] == [1 * MINUTE, 2 * MINUTE]

    # Finishing is noticed by the next poll (no webhook in this test).
    completed = await onboarding.sandbox.http.post(
        f"/_sandbox/accounts/{opened.account_id}/complete_onboarding", json={}
    )
    completed.raise_for_status()
    final = await onboarding.handle.result()
    assert [t.status for t in final.tokens] == ["completed"]
    assert await _token_status(db_pool, onboarding.token_id) == "completed"
    await record_history(onboarding.env.client, onboarding.handle.id, "onboarding_polling_backoff")


@pytest.mark.parametrize("onboarding", ["transfers"], indirect=True)
async def test_transfers_only_completes_from_payouts_enabled(
    onboarding: SkippingOnboarding, db_pool: asyncpg.Pool, sandbox_url: str
) -> None:
    opened = await onboarding.open_link()
    account = await _stripe(sandbox_url).v1.accounts.retrieve_async(opened.account_id)
    # Created as platforms configure it: controller properties, not `type=express`.
    assert account.controller is not None
    assert account.controller.stripe_dashboard is not None
    assert account.controller.stripe_dashboard.type == "express"
    assert account.controller.fees is not None and account.controller.fees.payer == "application"
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"transfers": "inactive"}

    completed = await onboarding.sandbox.http.post(
        f"/_sandbox/accounts/{opened.account_id}/complete_onboarding", json={}
    )
    completed.raise_for_status()
    await onboarding.account_updated(opened.account_id)
    final = await onboarding.handle.result()

    assert [t.status for t in final.tokens] == ["completed"]
    snapshot = final.last_snapshot
    assert snapshot is not None
    assert (snapshot.charges_enabled, snapshot.payouts_enabled) == (False, True)
    assert snapshot.capabilities == {"transfers": "active"}
    assert snapshot.required_capabilities == ["transfers"]
    row = await db_pool.fetchrow(
        "SELECT * FROM connect_account_status WHERE user_id = $1", onboarding.user_id
    )
    assert row is not None
    assert (row["charges_enabled"], row["payouts_enabled"]) == (False, True)
    assert row["onboarding_completed_at"] is not None
    assert await _token_status(db_pool, onboarding.token_id) == "completed"


async def test_capabilities_under_review_do_not_complete_onboarding(
    onboarding: SkippingOnboarding, db_pool: asyncpg.Pool
) -> None:
    opened = await onboarding.open_link()
    pending = await onboarding.sandbox.http.post(
        f"/_sandbox/accounts/{opened.account_id}/complete_onboarding",
        json={"capability_status": "pending"},
    )
    pending.raise_for_status()
    await onboarding.account_updated(opened.account_id)
    await onboarding.env.sleep(timedelta(minutes=5))

    status = await onboarding.status()
    assert status.last_snapshot is not None
    assert status.last_snapshot.details_submitted is True
    assert status.last_snapshot.capabilities == {"card_payments": "pending", "transfers": "pending"}
    assert [t.status for t in status.tokens] == ["in_progress"]
    assert await _token_status(db_pool, onboarding.token_id) == "in_progress"

    # Stripe finishes its review: the next poll completes it.
    (
        await onboarding.sandbox.http.post(
            f"/_sandbox/accounts/{opened.account_id}/complete_onboarding", json={}
        )
    ).raise_for_status()
    final = await onboarding.handle.result()
    assert [t.status for t in final.tokens] == ["completed"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("refusal", "error_type"),
    [
        (400, errors.STRIPE_INVALID_REQUEST),
        (401, errors.STRIPE_AUTHENTICATION),  # a key rotated away
        (403, errors.STRIPE_AUTHENTICATION),  # a restricted key without the permission
    ],
)
async def test_stripe_refusing_every_read_for_minutes_leaves_onboarding_pending_until_it_answers(
    onboarding: SkippingOnboarding, db_pool: asyncpg.Pool, refusal: int, error_type: str
) -> None:
    opened = await onboarding.open_link()
    # From now on Stripe refuses every account read (never retried by the read's own
    # policy, so only the workflow's backoff brings it back).
    fault = await onboarding.sandbox.add_fault(
        path=f"^/v1/accounts/{opened.account_id}$", method="GET", status=refusal
    )
    try:
        finished = await onboarding.sandbox.http.post(
            f"/_sandbox/accounts/{opened.account_id}/complete_onboarding", json={}
        )
        finished.raise_for_status()
        # The user comes back: the update answers (the read is refused, not the user).
        returned = await onboarding.handle.execute_update(
            ONBOARDING_RETURNED_UPDATE,
            OnboardingReturnedInput(token_id=onboarding.token_id),
            result_type=Status,
        )
        assert returned.stuck is not None and returned.stuck.failures == 1
        await onboarding.account_updated(opened.account_id)
        await onboarding.env.sleep(timedelta(minutes=20))

        stuck = await onboarding.status()
        assert stuck.stuck is not None
        assert stuck.stuck.step == "retrieve_connect_account"
        assert stuck.stuck.error_type == error_type
        assert stuck.stuck.failures >= 4
        assert stuck.stuck.next_attempt_at > stuck.stuck.since
        # The state is kept: the token is still in progress, nothing was recorded.
        assert [t.status for t in stuck.tokens] == ["in_progress"]
        assert stuck.last_snapshot is None
        assert await _token_status(db_pool, onboarding.token_id) == "in_progress"
    finally:
        (await onboarding.sandbox.http.delete(f"/_sandbox/faults/{fault}")).raise_for_status()

    # Stripe answers again: the run completes on its own, no user action, no replay.
    final = await onboarding.handle.result()
    assert final.stuck is None
    assert [t.status for t in final.tokens] == ["completed"]
    assert await _token_status(db_pool, onboarding.token_id) == "completed"
    if refusal == 400:
        await record_history(
            onboarding.env.client, onboarding.handle.id, "onboarding_refused_reads"
        )
