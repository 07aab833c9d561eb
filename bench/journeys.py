"""The customer journey the load, chaos and restart runs drive, and what they check after.

One journey is what a new customer does over HTTP: sign up → start a checkout → pay on
the (sandbox) hosted page and come back → wait for provisioning → open the welcome
email's link → set a password → see `go_to_dashboard`. The client behaves like a
careful real one: it retries 5xx, 429, "in progress" 409s and network errors with the
same `Idempotency-Key`, and polls the setup status at a human pace.

The latency reported is pay → provisioned: from the moment the sandbox answered the
payment to the `email_sent_at` the workflow recorded when provisioning finished (the
status then says `set_password`; nothing is left for onramp to do). Both clocks are
this machine's.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx

from bench.stack import CLIENT_KEY, BenchStack, bench_stripe_client
from onramp import passwords

# Strong enough for the API's check (zxcvbn score 3+, none of the user's own words: the
# benchmark users are `bench-…@example.com`).
PASSWORD = "tidal orchard velvet compass"
RETRY_STATUSES = {429, 500, 502, 503, 504}
RETRY_CONFLICTS = {"request_in_progress", "checkout_closing", "user_signing_up"}
POLL_SECONDS = 1.0  # a status page polling once a second
_LINK = re.compile(r"https?://\S+/v1/portal/set-password\?token=\S+")


class JourneyFailed(RuntimeError):
    """A step answered something a retry cannot fix, or the journey ran out of time."""


@dataclass
class Journey:
    index: int
    email: str
    user_id: str = ""
    started: float = 0.0
    paid_at: float = 0.0  # wall clock, when the sandbox answered the payment
    provisioned_at: float = 0.0  # wall clock, the workflow's email_sent_at
    finished: float = 0.0
    retries: int = 0
    error: str | None = None

    @property
    def pay_to_provisioned(self) -> float:
        return self.provisioned_at - self.paid_at

    @property
    def done(self) -> bool:
        return self.error is None and self.finished > 0


class Mailbox:
    """The SMTP sink's directory, read incrementally: address → set-password links and
    the Message-IDs of the messages it received."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.seen: set[str] = set()
        self.links: dict[str, list[str]] = {}
        self.message_ids: dict[str, list[str]] = {}

    def scan(self) -> None:
        if not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*.eml")):
            if path.name in self.seen:
                continue
            self.seen.add(path.name)
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))
            content = body.get_content() if body is not None else ""
            found = _LINK.search(content)
            self.links.setdefault(str(message["To"]), []).append(found.group(0) if found else "")
            self.message_ids.setdefault(str(message["To"]), []).append(str(message["Message-ID"]))

    def link_for(self, address: str) -> str | None:
        links = self.links.get(address)
        return links[0] if links else None


@dataclass
class Client:
    """HTTP to the API and the sandbox's hosted-page controls, with a careful retry."""

    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    mailbox: Mailbox
    deadline_seconds: float
    retries: Counter[str] = field(default_factory=Counter)

    async def call(
        self,
        journey: Journey,
        step: str,
        method: str,
        url: str,
        *,
        on: httpx.AsyncClient | None = None,
        accept: tuple[int, ...] = (200, 201, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        http = on or self.api
        pause = 0.2
        while True:
            if time.monotonic() - journey.started > self.deadline_seconds:
                raise JourneyFailed(f"{step}: no success within {self.deadline_seconds:.0f} s")
            try:
                response = await http.request(method, url, **kwargs)
            except httpx.HTTPError as error:
                reason = type(error).__name__
            else:
                if response.status_code in accept:
                    return response
                code = _error_code(response)
                retryable = response.status_code in RETRY_STATUSES or (
                    response.status_code == 409 and code in RETRY_CONFLICTS
                )
                if not retryable:
                    raise JourneyFailed(f"{step}: {response.status_code} {response.text[:300]}")
                reason = f"{response.status_code} {code}"
            journey.retries += 1
            self.retries[f"{step}: {reason}"] += 1
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)


def _error_code(response: httpx.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return ""
    return str(code)


def _auth(key: str = CLIENT_KEY, idempotency_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return headers


async def run_journey(client: Client, journey: Journey, run_id: str) -> None:
    """One customer, start to dashboard; errors end up in `journey.error`."""
    journey.started = time.monotonic()
    try:
        await _journey_steps(client, journey, run_id)
        journey.finished = time.monotonic()
    except JourneyFailed as failure:
        journey.error = str(failure)


async def _journey_steps(client: Client, journey: Journey, run_id: str) -> None:
    key = f"{run_id}-{journey.index}"
    signup = await client.call(
        journey,
        "signup",
        "POST",
        "/v1/users",
        json={"email": journey.email, "username": f"bench{journey.index}"},
        headers=_auth(idempotency_key=f"signup-{key}"),
        accept=(201, 202),
    )
    journey.user_id = signup.json()["id"]
    while signup.json().get("status") != "active":
        await asyncio.sleep(POLL_SECONDS)
        signup = await client.call(
            journey, "user", "GET", f"/v1/users/{journey.user_id}", headers=_auth(),
            accept=(200, 202),
        )  # fmt: skip

    started = await client.call(
        journey,
        "checkout",
        "POST",
        "/v1/checkout",
        json={"user_id": journey.user_id, "tier": "pro", "billing_cycle": "monthly"},
        headers=_auth(idempotency_key=f"checkout-{key}"),
        accept=(200, 201),
    )
    session_id = started.json()["checkout_session_id"]
    await client.call(
        journey,
        "pay",
        "POST",
        f"/_sandbox/checkout/sessions/{session_id}/pay",
        on=client.sandbox,
        json={"payment_method": "pm_card_visa"},
    )
    journey.paid_at = time.time()
    # The hosted page sends the browser back to onramp's success_url.
    await client.call(
        journey,
        "return",
        "GET",
        "/v1/checkout/return",
        params={"session_id": session_id},
        accept=(303,),
    )

    status = await _wait_status(client, journey, "set_password")
    journey.provisioned_at = _timestamp(status["email_sent_at"])
    link = await _wait_link(client, journey)
    token = parse_qs(urlsplit(link).query)["token"][0]
    await client.call(
        journey,
        "set-password",
        "POST",
        "/v1/portal/set-password",
        json={"token": token, "password": PASSWORD},
        # 410 after a retried request whose first try got through: the status decides.
        accept=(204, 410),
    )
    await _wait_status(client, journey, "go_to_dashboard")


async def _wait_status(client: Client, journey: Journey, wanted: str) -> dict[str, Any]:
    while True:
        response = await client.call(
            journey, "setup-status", "GET", f"/v1/users/{journey.user_id}/setup-status",
            headers=_auth(),
        )  # fmt: skip
        body: dict[str, Any] = response.json()
        if body["next_action"] == wanted or (
            wanted == "set_password" and body["next_action"] == "go_to_dashboard"
        ):
            return body
        if body["provisioning_state"] == "failed":
            raise JourneyFailed(f"provisioning failed: {body}")
        if time.monotonic() - journey.started > client.deadline_seconds:
            raise JourneyFailed(f"status never reached {wanted}: {body}")
        await asyncio.sleep(POLL_SECONDS)


async def _wait_link(client: Client, journey: Journey) -> str:
    while True:
        client.mailbox.scan()
        link = client.mailbox.link_for(journey.email)
        if link:
            return link
        if time.monotonic() - journey.started > client.deadline_seconds:
            raise JourneyFailed("the welcome email never arrived")
        await asyncio.sleep(POLL_SECONDS)


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


async def run_journeys(
    stack: BenchStack, count: int, concurrency: int, deadline_seconds: float
) -> tuple[list[Journey], float, Counter[str]]:
    """`count` journeys, at most `concurrency` at once; returns them and the wall time."""
    run_id = uuid.uuid4().hex[:8]
    journeys = [Journey(index, f"bench-{run_id}-{index}@example.com") for index in range(count)]
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60, limits=limits) as api,
        httpx.AsyncClient(base_url=stack.sandbox_url, timeout=60, limits=limits) as sandbox,
    ):
        client = Client(api, sandbox, Mailbox(stack.mail_dir), deadline_seconds)
        gate = asyncio.Semaphore(concurrency)

        async def one(journey: Journey) -> None:
            async with gate:
                await run_journey(client, journey, run_id)

        started = time.perf_counter()
        await asyncio.gather(*(one(journey) for journey in journeys))
        seconds = time.perf_counter() - started
    return journeys, seconds, client.retries


# -- after a run -------------------------------------------------------------------


@dataclass
class Invariants:
    """What must hold after every run, however rough."""

    journeys: int
    completed: int
    stripe_objects: dict[str, int]
    duplicate_stripe_objects: dict[str, int]
    duplicate_emails: int
    """Second welcome emails with a Message-ID of their own: a receiver cannot tell them
    from a new message, so any is a failure."""
    resent_emails: int
    """Copies of a message already received, with its Message-ID: a send retried after
    the worker died between the SMTP server's acceptance and the outbox's "sent" mark.
    SMTP has no idempotency; the stable Message-ID is what lets a receiver drop them."""
    duplicate_workspaces: int
    missing_workspaces: int
    rate_limited: int = 0
    """Requests the sandbox refused for Stripe's rate limit (retried by onramp, not
    injected faults): onramp's pacer should keep this at 0."""
    stripe_requests: int = 0

    @property
    def hold(self) -> bool:
        return (
            self.completed == self.journeys
            and not any(self.duplicate_stripe_objects.values())
            and self.duplicate_emails == 0
            and self.duplicate_workspaces == 0
            and self.missing_workspaces == 0
        )

    def lines(self) -> list[str]:
        return [
            f"journeys completed / started: {self.completed} / {self.journeys}",
            "Stripe objects (sandbox /_sandbox/stats, live): "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(self.stripe_objects.items())),
            "duplicate Stripe objects: "
            + ", ".join(f"{kind} {n}" for kind, n in self.duplicate_stripe_objects.items())
            + f" (total {sum(self.duplicate_stripe_objects.values())})",
            f"duplicate welcome emails: {self.duplicate_emails} "
            f"(resent with the same Message-ID, recognisable: {self.resent_emails})",
            f"duplicate workspaces: {self.duplicate_workspaces}; "
            f"paid users without a workspace: {self.missing_workspaces}",
            f"Stripe API requests: {self.stripe_requests} "
            f"({self.stripe_requests / max(self.journeys, 1):.1f} per journey); "
            f"refused by the rate limit (429 rate_limit): {self.rate_limited}",
        ]


async def check_invariants(stack: BenchStack, journeys: list[Journey]) -> Invariants:
    """Counted from Stripe (the sandbox), the SMTP sink and Postgres, not from onramp's
    own answers."""
    async with httpx.AsyncClient(base_url=stack.sandbox_url, timeout=30) as sandbox:
        stats = (await sandbox.get("/_sandbox/stats")).json()
    live = {kind: counts["live"] for kind, counts in stats["objects"].items()}

    client = bench_stripe_client(stack.sandbox_url)
    customers_by_email: Counter[str] = Counter()
    async for customer in (await client.v1.customers.list_async({"limit": 100})).auto_paging_iter():
        customers_by_email[customer.email or ""] += 1
    subscriptions_by_customer: Counter[str] = Counter()
    listing = await client.v1.subscriptions.list_async({"limit": 100, "status": "all"})
    async for subscription in listing.auto_paging_iter():
        subscriptions_by_customer[str(subscription.customer)] += 1
    sessions_by_customer: Counter[str] = Counter()
    async for session in (
        await client.v1.checkout.sessions.list_async({"limit": 100})
    ).auto_paging_iter():
        sessions_by_customer[str(session.customer)] += 1

    mailbox = Mailbox(stack.mail_dir)
    mailbox.scan()
    ours = {journey.email for journey in journeys}
    connection = await asyncpg.connect(stack.database_url)
    try:
        workspaces = await connection.fetch(
            "SELECT user_id, count(*) AS n FROM workspaces GROUP BY user_id"
        )
        # A paid run whose user has no workspace: provisioning lost (the unique index on
        # workspaces.user_id already makes a second workspace impossible).
        missing_workspaces = await connection.fetchval(
            """
            SELECT count(DISTINCT c.user_id) FROM checkout_runs c
            WHERE c.payment_state = 'paid'
              AND NOT EXISTS (SELECT 1 FROM workspaces w WHERE w.user_id = c.user_id)
            """
        )
    finally:
        await connection.close()
    return Invariants(
        journeys=len(journeys),
        completed=sum(journey.done for journey in journeys),
        stripe_objects=live,
        duplicate_stripe_objects={
            "customers per email": _extra(customers_by_email),
            "subscriptions per customer": _extra(subscriptions_by_customer),
            "checkout sessions per customer": _extra(sessions_by_customer),
        },
        duplicate_emails=sum(max(0, len(set(mailbox.message_ids.get(a, []))) - 1) for a in ours),
        resent_emails=sum(
            len(mailbox.message_ids.get(a, [])) - len(set(mailbox.message_ids.get(a, [])))
            for a in ours
        ),
        duplicate_workspaces=sum(max(0, row["n"] - 1) for row in workspaces),
        missing_workspaces=int(missing_workspaces),
        rate_limited=sum(stats.get("rate_limited", {}).values()),
        stripe_requests=sum(
            row["count"] for row in stats["requests"] if row["path"].startswith("/v1/")
        ),
    )


def _extra(counts: Counter[str]) -> int:
    return sum(n - 1 for n in counts.values() if n > 1)


@dataclass
class Hashing:
    """What argon2id cost during a run, reported beside the figures (the hash is never
    weakened for a benchmark): the API's own count and time of its hashes, and the CPU
    one hash takes, measured in this process with the same parameters."""

    hashes: int = 0
    seconds: float = 0.0
    cpu_per_hash: float = 0.0

    @classmethod
    async def before(cls, stack: BenchStack) -> Hashing:
        return cls(
            hashes=int(await stack.api_metric("onramp_password_hash_seconds_count")),
            seconds=await stack.api_metric("onramp_password_hash_seconds_sum"),
        )

    async def since(self, stack: BenchStack) -> Hashing:
        now = await Hashing.before(stack)
        return Hashing(
            hashes=now.hashes - self.hashes,
            seconds=now.seconds - self.seconds,
            cpu_per_hash=_cpu_per_hash(),
        )

    @property
    def cpu(self) -> float:
        """CPU seconds the run's hashes took (their count times one hash's CPU)."""
        return self.hashes * self.cpu_per_hash

    def line(self, cpu_available: float) -> str:
        cpu = self.cpu
        mean = self.seconds / self.hashes * 1000 if self.hashes else float("nan")
        return (
            f"argon2id password hashing: {self.hashes} hashes, {self.seconds:.1f} s in the "
            f"API's hashing pool (mean {mean:.0f} ms under load); one hash is "
            f"{self.cpu_per_hash * 1000:.0f} ms of CPU, so about {cpu:.1f} CPU-s "
            f"({cpu / cpu_available:.0%} of the run's)"
        )


def _cpu_per_hash(samples: int = 5) -> float:
    """CPU seconds of one hash with onramp's parameters (all of argon2's lane threads)."""
    started = time.process_time()
    for _ in range(samples):
        passwords.hash_blocking(PASSWORD)
    return (time.process_time() - started) / samples


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_line(name: str, values: list[float]) -> str:
    return (
        f"{name}: p50 {percentile(values, 0.5):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
        f"p99 {percentile(values, 0.99):.2f} s, max {max(values, default=float('nan')):.2f} s"
    )
