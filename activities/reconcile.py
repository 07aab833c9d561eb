"""Reconciliation's steps: compare one page of Stripe with Postgres, and the safe repairs.

The page step reads Stripe (through the worker's client, so the shared pacer keeps every
request under the account's rate limit) and Postgres, and writes what it found, the ids
it listed and the run's progress in one transaction. Repairs are their own steps: a
re-read signal to `subscription-<user>` (the webhook's path) and deleting an orphan
customer onramp created, checked again just before the delete.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import stripe
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from activities.reconcile_compare import (
    Candidate,
    compare_owned,
    compare_subscriptions,
    created_by_onramp,
    missing,
    stuck,
)
from activities.stripe_gateway import call_stripe, convert_stripe_error, idempotency_key
from onramp.logging import log_event
from onramp.repositories import (
    billing,
    checkout_runs,
    onboarding_tokens,
    reconcile_runs,
    reconcile_seen,
    users,
)
from onramp.repositories import reconcile_findings as findings_repo
from onramp.user_ids import metadata_user_id
from workflows import search_attributes
from workflows.contracts.common import StripeEventSignal
from workflows.contracts.reconcile import (
    PHASES,
    SUBSCRIPTION_REREAD,
    BeginRunInput,
    DeleteOrphanInput,
    FinishRunInput,
    PageInput,
    PageResult,
    Phase,
    ReconcilePolicy,
    RecordRepairInput,
    Repair,
    RepairOutcome,
    RereadInput,
    RunStarted,
)
from workflows.contracts.subscription import subscription_workflow_id

logger = logging.getLogger(__name__)

# Saved ids read per step of the `missing_*` phases (only the unlisted ones cost a request).
_SAVED_BATCH = 500
_STUCK_LIMIT = 1000


def _next_phase(phase: Phase) -> Phase | None:
    index = PHASES.index(phase)
    return PHASES[index + 1] if index + 1 < len(PHASES) else None


def _gone(error: stripe.StripeError) -> bool:
    """404, or the 403 `account_invalid` Stripe answers for a deleted account."""
    code = error.code or (error.error.code if error.error is not None else None)
    return error.http_status == 404 or (error.http_status == 403 and code == "account_invalid")


class ReconcileActivities:
    def __init__(self, pool: asyncpg.Pool, client: stripe.StripeClient, policy: ReconcilePolicy):
        self.pool = pool
        self.stripe = client
        self.policy = policy

    @activity.defn
    async def begin_reconcile_run(self, request: BeginRunInput) -> RunStarted:
        run = await reconcile_runs.begin_run(
            self.pool, request.run_id, request.workflow_id, request.dry_run
        )
        log_event(logger, "RECONCILE_STARTED", run_id=run.id, dry_run=run.dry_run)
        return RunStarted(run_id=run.id, started_at=run.started_at, policy=self.policy)

    @activity.defn
    async def reconcile_page(self, request: PageInput) -> PageResult:
        """Compare one page of the phase; record findings and progress together."""
        seen: list[str] = []
        cursor: str | None = None
        requests = checked = 0
        if request.phase in ("customers", "accounts", "subscriptions"):
            objects, cursor = await self._list_page(request)
            requests, checked = 1, len(objects)
            seen = [str(obj["id"]) for obj in objects]
            candidates = await self._compare(request.phase, objects, request.policy)
        elif request.phase in ("missing_users", "missing_billing"):
            candidates, cursor, requests, checked = await self._missing_batch(request)
        else:
            candidates = await self._stuck(request.policy)
            checked = len(candidates)
        next_phase: Phase | None = (
            request.phase if cursor is not None else _next_phase(request.phase)
        )
        progress = reconcile_runs.PageProgress(
            phase=request.phase,
            cursor=request.cursor,
            next_phase=next_phase or "done",
            next_cursor=cursor,
            objects=checked,
            requests=requests,
            findings=len(candidates),
        )
        repairs: list[Repair] = []
        async with self.pool.acquire() as connection, connection.transaction():
            await reconcile_seen.add_seen(connection, request.run_id, seen)
            for candidate in candidates:
                row = await findings_repo.record_finding(
                    connection, request.run_id, candidate.finding
                )
                if candidate.repair is not None and row.repaired_at is None and row.user_id:
                    repairs.append(
                        Repair(
                            action=candidate.repair,
                            finding_id=row.id,
                            user_id=row.user_id,
                            stripe_id=row.object_id,
                        )
                    )
            await reconcile_runs.advance(connection, request.run_id, progress)
        return PageResult(
            phase=next_phase,
            cursor=cursor,
            objects=checked,
            findings=len(candidates),
            repairs=repairs,
        )

    async def _list_page(self, request: PageInput) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": request.policy.page_size}
        if request.cursor is not None:
            params["starting_after"] = request.cursor
        v1 = self.stripe.v1
        if request.phase == "customers":
            page: Any = await call_stripe("customers.list", v1.customers.list_async(params))  # type: ignore[arg-type]
        elif request.phase == "accounts":
            page = await call_stripe("accounts.list", v1.accounts.list_async(params))  # type: ignore[arg-type]
        else:
            params["status"] = "all"
            page = await call_stripe("subscriptions.list", v1.subscriptions.list_async(params))  # type: ignore[arg-type]
        objects = [obj.to_dict() for obj in page.data]
        cursor = str(objects[-1]["id"]) if page.has_more and objects else None
        return objects, cursor

    async def _compare(
        self, phase: Phase, objects: list[dict[str, Any]], policy: ReconcilePolicy
    ) -> list[Candidate]:
        now = time.time()
        grace = policy.orphan_grace_seconds
        if phase in ("customers", "accounts"):
            claimed = sorted({uid for obj in objects if (uid := metadata_user_id(obj))})
            rows = await users.saved_ids_of(self.pool, claimed) if claimed else []
            by_id = {row.user_id: row for row in rows}
            object_type = "customer" if phase == "customers" else "account"
            return compare_owned(
                objects, by_id, object_type=object_type, now=now, grace_seconds=grace
            )
        customers = sorted({str(obj.get("customer")) for obj in objects if obj.get("customer")})
        owners = await users.saved_ids_of_customers(self.pool, customers) if customers else []
        by_customer = {str(row.stripe_customer_id): row for row in owners}
        user_ids = sorted({row.user_id for row in owners})
        mirrors = await billing.mirrors_of(self.pool, user_ids) if user_ids else []
        return compare_subscriptions(
            objects,
            by_customer,
            {row.user_id: row for row in mirrors},
            now=now,
            grace_seconds=grace,
        )

    async def _missing_batch(
        self, request: PageInput
    ) -> tuple[list[Candidate], str | None, int, int]:
        """Saved ids the listing did not show, each looked up (a customer on a test
        clock is left out of Stripe's list without being gone)."""
        saved: list[tuple[str, str, str]] = []  # (object type, stripe id, user id)
        if request.phase == "missing_users":
            rows = await users.saved_ids_page(self.pool, request.cursor, _SAVED_BATCH)
            for row in rows:
                if row.stripe_customer_id:
                    saved.append(("customer", row.stripe_customer_id, row.user_id))
                if row.connect_account_id:
                    saved.append(("account", row.connect_account_id, row.user_id))
            last = rows[-1].user_id if rows else None
        else:
            mirrors = await billing.saved_subscriptions_page(
                self.pool, request.cursor, _SAVED_BATCH
            )
            saved = [
                ("subscription", str(row.stripe_subscription_id), row.user_id) for row in mirrors
            ]
            last = mirrors[-1].user_id if mirrors else None
        count = len(rows) if request.phase == "missing_users" else len(mirrors)
        cursor = last if count == _SAVED_BATCH else None
        unseen = set(await reconcile_seen.unseen(self.pool, request.run_id, [s[1] for s in saved]))
        found: list[Candidate] = []
        requests = 0
        for object_type, stripe_id, user_id in saved:
            if stripe_id not in unseen:
                continue
            requests += 1
            if not await self._exists(object_type, stripe_id):
                found.append(Candidate(missing(object_type, stripe_id, user_id)))
        return found, cursor, requests, count

    async def _exists(self, object_type: str, stripe_id: str) -> bool:
        v1 = self.stripe.v1
        try:
            if object_type == "customer":
                customer = await v1.customers.retrieve_async(stripe_id)
                return not bool(customer.to_dict().get("deleted"))
            if object_type == "account":
                await v1.accounts.retrieve_async(stripe_id)
            else:
                await v1.subscriptions.retrieve_async(stripe_id)
        except stripe.StripeError as error:
            if _gone(error):
                return False
            raise convert_stripe_error(error, f"{object_type}s.retrieve") from None
        return True

    async def _stuck(self, policy: ReconcilePolicy) -> list[Candidate]:
        runs = await checkout_runs.stuck_runs(
            self.pool,
            confirming_seconds=policy.stuck_checkout_seconds,
            provisioning_failed_seconds=policy.stuck_provisioning_seconds,
            limit=_STUCK_LIMIT,
        )
        tokens = await onboarding_tokens.in_progress_since(
            self.pool, policy.stuck_onboarding_seconds, _STUCK_LIMIT
        )
        return stuck(runs, tokens)

    @activity.defn
    async def reread_subscription(self, request: RereadInput) -> RepairOutcome:
        """Signal `subscription-<user>` to re-read the subscription, as a webhook would
        (signal-with-start: the entity workflow may not be running)."""
        ref = SUBSCRIPTION_REREAD
        workflow_id = subscription_workflow_id(request.user_id)
        signal = StripeEventSignal(
            # One event per run and object: the workflow applies it once.
            event_id=f"reconcile_{request.run_id}_{request.subscription_id}",
            type="customer.subscription.updated",
            created=datetime.now(UTC),
            object_id=request.subscription_id,
            object_type="subscription",
        )
        handle: WorkflowHandle[Any, Any] = await activity.client().start_workflow(
            ref.workflow.name,
            ref.workflow.input(user_id=request.user_id),
            id=workflow_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=ref.name,
            start_signal_args=[signal],
            search_attributes=search_attributes.user_id_attributes(request.user_id),
        )
        log_event(
            logger, "RECONCILE_REREAD", user_id=request.user_id,
            subscription_id=request.subscription_id, workflow_id=handle.id,
        )  # fmt: skip
        return RepairOutcome(done=True, note=f"re-read signalled to {workflow_id}")

    @activity.defn
    async def delete_orphan_customer(self, request: DeleteOrphanInput) -> RepairOutcome:
        """Delete an orphan customer onramp created, only if it is still an orphan, past
        the grace, with no subscription and no invoice (nothing ever billed on it)."""
        reason = await self._why_not_delete(request)
        if reason is not None:
            return RepairOutcome(done=False, note=f"left alone: {reason}")
        key = idempotency_key("reconcile", request.customer_id, "delete_orphan_customer")
        try:
            await self.stripe.v1.customers.delete_async(
                request.customer_id, options={"idempotency_key": key}
            )
        except stripe.StripeError as error:
            if not _gone(error):
                raise convert_stripe_error(error, "customers.delete") from None
        log_event(
            logger, "RECONCILE_ORPHAN_DELETED", user_id=request.user_id,
            stripe_customer_id=request.customer_id,
        )  # fmt: skip
        return RepairOutcome(done=True, note="orphan customer deleted")

    async def _why_not_delete(self, request: DeleteOrphanInput) -> str | None:
        try:
            customer = (
                await self.stripe.v1.customers.retrieve_async(request.customer_id)
            ).to_dict()
        except stripe.StripeError as error:
            if _gone(error):
                return "already gone"
            raise convert_stripe_error(error, "customers.retrieve") from None
        if customer.get("deleted"):
            return "already gone"
        if not created_by_onramp(customer) or metadata_user_id(customer) != request.user_id:
            return "not created by onramp for this user"
        if time.time() - float(customer.get("created") or 0) < request.grace_seconds:
            return "younger than the grace period"
        saved = await users.saved_ids_of(self.pool, [request.user_id])
        if saved and saved[0].stripe_customer_id == request.customer_id:
            return "now the user's saved customer"
        v1 = self.stripe.v1
        subs = await call_stripe(
            "subscriptions.list",
            v1.subscriptions.list_async(
                {"customer": request.customer_id, "status": "all", "limit": 1}
            ),
        )
        if subs.data:
            return "it has a subscription"
        invoices = await call_stripe(
            "invoices.list", v1.invoices.list_async({"customer": request.customer_id, "limit": 1})
        )
        if invoices.data:
            return "it has an invoice"
        return None

    @activity.defn
    async def record_repair(self, request: RecordRepairInput) -> None:
        await findings_repo.mark_repaired(self.pool, request.finding_id, request.note)

    @activity.defn
    async def finish_reconcile_run(self, request: FinishRunInput) -> None:
        """Resolve what a complete run no longer found; close the run."""
        run = await reconcile_runs.get_run(self.pool, request.run_id)
        if run is None:
            return
        resolved = 0
        outcome: reconcile_runs.RunOutcome = "complete" if request.complete else "incomplete"
        async with self.pool.acquire() as connection, connection.transaction():
            if request.complete and run.finished_at is None:
                resolved = await findings_repo.resolve_unseen(connection, run.started_at)
            await reconcile_seen.clear_seen(connection, request.run_id)
            await reconcile_runs.finish_run(connection, request.run_id, outcome, request.repairs)
        log_event(
            logger, "RECONCILE_FINISHED", run_id=request.run_id, outcome=outcome,
            repairs=request.repairs, resolved=resolved,
        )  # fmt: skip
