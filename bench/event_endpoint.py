"""One event endpoint during a bench run, and what must hold about its deliveries after.

`create_endpoint` registers the bench's receiver through the admin API for every event
type of the catalogue. After the journeys, `wait_delivered` waits (bounded) until every
outbox event of the run's users was received (answered 2xx) and recorded as delivered,
and `check_delivery` counts, from the receiver's own records and Postgres:

- lost: an outbox event of the run's users that never arrived verified and accepted;
- duplicates: a repeat is the same `webhook-id` arriving again (a retry); an event
  under two webhook-ids, or a webhook-id carrying another event, is a failure;
- order: per user, the order of first acceptance equals the outbox sequence order;
- attempts: `event_deliveries` has a `delivered` row for every event, none abandoned,
  and no more failed attempts than the receiver injected (an attempt cut short by a
  worker SIGKILL is not recorded, so fewer is possible);
- lag: the event's `occurred_at` (its transaction's time in Postgres) → its first
  acceptance by the receiver, both on this machine's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg
import httpx

from bench.event_receiver import EventReceiver
from bench.journeys import Journey, percentile
from bench.stack import ADMIN_KEY, BenchStack
from onramp.events import CATALOGUE


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str
    type: str
    user_id: str
    sequence: int
    occurred_at: float


async def create_endpoint(stack: BenchStack, receiver: EventReceiver, description: str) -> str:
    """An endpoint for every event type, pointed at `receiver`, which learns its secret."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
        response = await api.post(
            "/v1/admin/event-endpoints",
            json={
                "url": receiver.url,
                "event_types": sorted(CATALOGUE),
                "description": description,
            },
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    response.raise_for_status()
    body = response.json()
    receiver.secret = str(body["secret"])
    return str(body["id"])


async def outbox_events(connection: asyncpg.Connection, user_ids: list[str]) -> list[OutboxEvent]:
    rows = await connection.fetch(
        """
        SELECT id, type, user_id::text AS user_id, sequence,
               extract(epoch FROM occurred_at)::float8 AS occurred_at
        FROM outbound_events WHERE user_id = ANY($1::uuid[]) AND type = ANY($2::text[])
        ORDER BY sequence
        """,
        user_ids,
        sorted(CATALOGUE),
    )
    return [
        OutboxEvent(row["id"], row["type"], row["user_id"], row["sequence"], row["occurred_at"])
        for row in rows
    ]


async def _recorded_delivered(connection: asyncpg.Connection, endpoint_id: str) -> set[str]:
    rows = await connection.fetch(
        "SELECT DISTINCT event_id FROM event_deliveries "
        "WHERE endpoint_id = $1 AND status = 'delivered'",
        endpoint_id,
    )
    return {row["event_id"] for row in rows}


async def wait_delivered(
    stack: BenchStack,
    receiver: EventReceiver,
    endpoint_id: str,
    user_ids: list[str],
    seconds: float,
) -> tuple[bool, float]:
    """Until every outbox event of `user_ids` was accepted by the receiver and recorded
    as delivered, or `seconds` passed; (drained, `time.monotonic()` when it was seen)."""
    started = time.monotonic()
    connection = await asyncpg.connect(stack.database_url)
    try:
        while True:
            events = await outbox_events(connection, user_ids)
            accepted = {a.webhook_id for a in receiver.arrivals if a.outcome == "accepted"}
            recorded = await _recorded_delivered(connection, endpoint_id)
            wanted = {event.event_id for event in events}
            if events and wanted <= accepted and wanted <= recorded:
                return True, time.monotonic()
            if time.monotonic() - started >= seconds:
                return False, time.monotonic()
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


@dataclass
class DeliveryCheck:
    """The figures and invariants of one endpoint's deliveries; see the module docstring."""

    events: int = 0
    users: int = 0
    types: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unverified: int = 0
    webhook_ids: int = 0
    distinct_events: int = 0
    mismatched_ids: int = 0
    repeats: int = 0
    out_of_order_users: list[str] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    failed_by_answer: Counter[str] = field(default_factory=Counter)
    without_delivered_row: int = 0
    other_users: int = 0
    sequence_gaps: int = 0
    lags: list[float] = field(default_factory=list)
    # The lag split: until the receiver saw the event at all, then until it accepted it.
    to_first_request: list[float] = field(default_factory=list)
    retrying: list[float] = field(default_factory=list)
    drained: bool = True
    drain_seconds: float = 0.0

    @property
    def injected_failures(self) -> int:
        return self.injected["answered 500"] + self.injected["connection reset"]

    @property
    def recorded_failures(self) -> int:
        return self.attempts["failed"] + self.attempts["abandoned"]

    @property
    def hold(self) -> bool:
        return (
            self.drained
            and self.events > 0
            and not self.lost
            and self.unverified == 0
            and self.mismatched_ids == 0
            and self.webhook_ids == self.distinct_events == self.events
            and not self.out_of_order_users
            and self.without_delivered_row == 0
            and self.attempts["abandoned"] == 0
            and self.recorded_failures <= self.injected_failures
        )

    def lines(self) -> list[str]:
        order = ", ".join(f"{kind} {n}" for kind, n in sorted(self.types.items()))
        return [
            f"events of the run's {self.users} users in the outbox: {self.events} ({order})",
            f"drained: {'yes' if self.drained else 'NO (gave up waiting)'}, "
            f"{self.drain_seconds:.1f} s after the last journey finished",
            f"lost (never accepted): {len(self.lost)}; requests failing verification: "
            f"{self.unverified}",
            f"distinct webhook-ids accepted: {self.webhook_ids}, distinct events: "
            f"{self.distinct_events}; ids not matching their event: {self.mismatched_ids}; "
            f"repeats of a webhook-id already accepted (retries): {self.repeats}",
            f"users whose events arrived out of outbox order: {len(self.out_of_order_users)}",
            f"receiver: {sum(self.injected.values())} verified requests, "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(self.injected.items())),
            "event_deliveries: "
            + ", ".join(f"{status} {n}" for status, n in sorted(self.attempts.items()))
            + "; failed attempts by answer: "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(self.failed_by_answer.items()))
            + f"; recorded failed {self.recorded_failures} vs injected "
            f"{self.injected_failures} (an attempt cut by a worker kill is not recorded)",
            f"events without a `delivered` row: {self.without_delivered_row}; "
            f"accepted events of other users: {self.other_users}",
            f"sequence numbers missing from the outbox between the run's first and last "
            f"event (each holds the dispatcher back until it is settled): {self.sequence_gaps}",
            f"delivery lag (occurred_at → first accepted): p50 {percentile(self.lags, 0.5):.2f} s, "
            f"p99 {percentile(self.lags, 0.99):.2f} s, "
            f"max {max(self.lags, default=float('nan')):.2f} s; of it, until the first "
            f"request: p50 {percentile(self.to_first_request, 0.5):.2f} s, "
            f"p99 {percentile(self.to_first_request, 0.99):.2f} s; first request → accepted: "
            f"p50 {percentile(self.retrying, 0.5):.2f} s, "
            f"p99 {percentile(self.retrying, 0.99):.2f} s",
        ]


async def check_delivery(
    stack: BenchStack, receiver: EventReceiver, endpoint_id: str, user_ids: list[str]
) -> DeliveryCheck:
    """Counted from the receiver's records and Postgres (see the module docstring)."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        events = await outbox_events(connection, user_ids)
        recorded = await _recorded_delivered(connection, endpoint_id)
        rows = await connection.fetch(
            """
            SELECT status, coalesce(response_code::text, 'no answer') AS answer, count(*) AS n
            FROM event_deliveries WHERE endpoint_id = $1 AND user_id = ANY($2::uuid[])
            GROUP BY status, answer
            """,
            endpoint_id,
            user_ids,
        )
        gaps = await connection.fetchval(
            "SELECT ($2::bigint - $1::bigint + 1) - count(*) FROM outbound_events "
            "WHERE sequence BETWEEN $1 AND $2",
            min((event.sequence for event in events), default=0),
            max((event.sequence for event in events), default=-1),
        )
    finally:
        await connection.close()
    ours = set(user_ids)
    check = DeliveryCheck(events=len(events), users=len(ours), unverified=receiver.unverified)
    check.types = Counter(event.type for event in events)
    check.sequence_gaps = int(gaps or 0)
    for row in rows:
        check.attempts[row["status"]] += row["n"]
        if row["status"] != "delivered":
            check.failed_by_answer[row["answer"]] += row["n"]
    arrivals = [a for a in receiver.arrivals if a.user_id in ours]
    check.injected = Counter(a.outcome for a in arrivals)
    accepted = [a for a in arrivals if a.outcome == "accepted"]
    check.other_users = sum(
        1 for a in receiver.arrivals if a.user_id not in ours and a.outcome == "accepted"
    )
    first: dict[str, float] = {}
    seen: dict[str, float] = {}
    for arrival in arrivals:
        seen.setdefault(arrival.webhook_id, arrival.at)
    order: dict[str, list[str]] = {}
    ids_of_event: dict[str, set[str]] = {}
    for arrival in accepted:
        ids_of_event.setdefault(arrival.event_id, set()).add(arrival.webhook_id)
        if arrival.webhook_id not in first:
            first[arrival.webhook_id] = arrival.at
            order.setdefault(arrival.user_id or "", []).append(arrival.webhook_id)
    check.webhook_ids = len(first)
    check.distinct_events = len(ids_of_event)
    check.repeats = len(accepted) - len(first)
    check.mismatched_ids = sum(1 for a in accepted if a.webhook_id != a.event_id) + sum(
        1 for ids in ids_of_event.values() if len(ids) > 1
    )
    by_user: dict[str, list[str]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append(event.event_id)
        if event.event_id not in first:
            check.lost.append(event.event_id)
        else:
            check.lags.append(first[event.event_id] - event.occurred_at)
            check.to_first_request.append(seen[event.event_id] - event.occurred_at)
            check.retrying.append(first[event.event_id] - seen[event.event_id])
        if event.event_id not in recorded:
            check.without_delivered_row += 1
    check.out_of_order_users = [
        user
        for user, wanted in by_user.items()
        if [e for e in order.get(user, []) if e in set(wanted)] != [e for e in wanted if e in first]
    ]
    return check


async def delivered_after(
    stack: BenchStack,
    receiver: EventReceiver,
    endpoint_id: str,
    journeys: list[Journey],
    seconds: float,
) -> DeliveryCheck:
    """After the journeys: wait (at most `seconds`) for their users' events, then check."""
    users = [journey.user_id for journey in journeys if journey.user_id]
    drained, at = await wait_delivered(stack, receiver, endpoint_id, users, seconds)
    check = await check_delivery(stack, receiver, endpoint_id, users)
    last = max((journey.finished for journey in journeys if journey.done), default=at)
    check.drained, check.drain_seconds = drained, max(0.0, at - last)
    return check
