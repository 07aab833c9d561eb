"""Journey load: N customers from signup to dashboard at concurrency C, beside the engine.

Starts the embedded stack (bench/stack.py: Postgres, Temporal dev server, Stripe
sandbox, SMTP sink, worker and API as separate processes on 127.0.0.1), runs N journeys
(bench/journeys.py) at concurrency C and waits until the webhooks they caused are
handled, counts how many activities a journey ran (regular and local), then — in the
same run, on the same Temporal server — runs N workflows of that many no-op activities
of each kind at the same concurrency (bench/baseline.py), and N of as many all-regular
ones. Prints completed journeys/s (until the webhooks were handled), pay → provisioned
latency, the CPU each process used and the part argon2id took, the baselines' figures
and the throughput ratios, and the invariants (no duplicate Stripe object, email or
workspace).

Then (unless --no-event-endpoint), on the same stack, the same N journeys at the same
concurrency again with one event endpoint configured for every event type, its receiver
(bench/event_receiver.py) verifying and accepting every delivery, then the same N
journeys a third time with the endpoint paused (a control): journeys/s of each phase,
the endpoint phase's ratio to the mean of the two without it (each phase runs on more
stored history than the one before; the mean of the phases around it cancels that
drift), the delivery lag (event committed → received, p50/p99) and the delivery
invariants (bench/event_endpoint.py). The endpoint stays paused for the baselines, so
its dispatcher's polling does not weigh on them.

Exit 0 when every journey completed, the invariants hold, the ratio is at least
--min-ratio (0.6), p99 pay → provisioned is under --max-p99 (5 s), and with the endpoint
journeys/s is at least --min-endpoint-ratio (0.9) of the mean of the phases without it
and every event was delivered.

    .venv/bin/python bench/journey_load.py [--journeys 200] [--concurrency 50]
        [--no-event-endpoint]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.baseline import BASELINE_WORKFLOW, BaselineInput  # noqa: E402
from bench.event_endpoint import DeliveryCheck, create_endpoint, delivered_after  # noqa: E402
from bench.event_receiver import EventReceiver  # noqa: E402
from bench.journeys import (  # noqa: E402
    Hashing,
    Journey,
    check_invariants,
    latency_line,
    percentile,
    run_journeys,
)
from bench.stack import ADMIN_KEY, BenchStack  # noqa: E402
from devstack.processes import ChildProcess  # noqa: E402
from workflows.contracts.checkout import checkout_workflow_id  # noqa: E402
from workflows.contracts.signup import signup_workflow_id  # noqa: E402
from workflows.contracts.subscription import subscription_workflow_id  # noqa: E402
from workflows.local_steps import LOCAL_ACTIVITY_MARKER  # noqa: E402


@dataclass
class EngineFigures:
    """From the histories of a sample of journeys: how much the engine did, and where
    a task waited."""

    activities: float = 0.0  # mean per journey: regular activities (a task each)
    local_activities: float = 0.0  # run inside a workflow task (Postgres-only steps)
    signals: float = 0.0
    waits: dict[str, list[float]] = field(default_factory=dict)

    def line(self) -> str:
        parts = [
            f"{name} mean {sum(values) / len(values) * 1000:.0f} ms"
            for name, values in self.waits.items()
            if values
        ]
        return "; ".join(parts)


_SCHEDULED_STARTED = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity queued",
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: "workflow task queued",
}
_STARTED_DONE = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "activity running",
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: "workflow task running",
}


def journey_workflows(journeys: list[Journey], sample: int) -> list[list[str]]:
    """The signup, checkout and subscription workflows of each of `sample` journeys (the
    subscription workflow's history so far: it stays open)."""
    return [
        [
            signup_workflow_id(journey.user_id),
            checkout_workflow_id(journey.user_id),
            subscription_workflow_id(journey.user_id),
        ]
        for journey in [j for j in journeys if j.done][:sample]
    ]


async def engine_figures(client: Client, units: list[list[str]]) -> EngineFigures:
    """Activities and signals per unit of work (a group of workflows), and the mean time
    a task waited for a worker and ran."""
    figures = EngineFigures(
        waits={name: [] for name in [*_SCHEDULED_STARTED.values(), *_STARTED_DONE.values()]}
    )
    for unit in units:
        for workflow_id in unit:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            opened: dict[str, float] = {}
            for event in history.events:
                at = event.event_time.ToDatetime().timestamp()
                kind = event.event_type
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                    figures.activities += 1
                elif (
                    kind == EventType.EVENT_TYPE_MARKER_RECORDED
                    and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
                ):
                    figures.local_activities += 1
                elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                    figures.signals += 1
                if kind in _SCHEDULED_STARTED:
                    opened[_SCHEDULED_STARTED[kind]] = at
                elif kind in _STARTED_DONE:
                    name = _STARTED_DONE[kind]
                    queued = name.replace("running", "queued")
                    if queued in opened:
                        figures.waits[queued].append(at - opened.pop(queued))
                    opened[name] = at
                elif kind in (
                    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                ):
                    name = (
                        "activity running"
                        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                        else "workflow task running"
                    )
                    if name in opened:
                        figures.waits[name].append(at - opened.pop(name))
    if units:
        figures.activities /= len(units)
        figures.local_activities /= len(units)
        figures.signals /= len(units)
    return figures


async def slowest_timelines(client: Client, journeys: list[Journey], count: int) -> list[str]:
    """What the checkout and subscription workflows did after the payment, for the
    `count` slowest journeys: signals, activities (scheduled… …completed) and local
    activities, in seconds after the sandbox answered the payment."""
    lines: list[str] = []
    slowest = sorted((j for j in journeys if j.done), key=lambda j: -j.pay_to_provisioned)
    for journey in slowest[:count]:
        lines.append(f"  {journey.pay_to_provisioned:.2f} s")
        for label, workflow_id in (
            ("checkout", checkout_workflow_id(journey.user_id)),
            ("subscription", subscription_workflow_id(journey.user_id)),
        ):
            history = await client.get_workflow_handle(workflow_id).fetch_history()
            steps = _timeline(history.events, journey.paid_at, journey.provisioned_at)
            lines.append(f"    {label}: " + ", ".join(steps))
    return lines


def _timeline(events: Iterable[HistoryEvent], start: float, end: float) -> list[str]:
    names: dict[int, str] = {}
    steps: list[str] = []
    for event in events:
        offset = event.event_time.ToDatetime().timestamp() - start
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled_as = event.activity_task_scheduled_event_attributes.activity_type
            names[event.event_id] = scheduled_as.name
        if offset < -1 or offset > end - start + 0.5:
            continue
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            steps.append(f"{offset:+.2f} {names[event.event_id]}…")
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            steps.append(f"{offset:+.2f} …{names.get(scheduled, '?')}")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signal = event.workflow_execution_signaled_event_attributes.signal_name
            steps.append(f"{offset:+.2f} signal {signal}")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            steps.append(f"{offset:+.2f} update accepted")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            steps.append(f"{offset:+.2f} update completed")
        elif (
            kind == EventType.EVENT_TYPE_MARKER_RECORDED
            and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        ):
            steps.append(f"{offset:+.2f} local")
    return steps


async def run_baseline(
    stack: BenchStack, count: int, concurrency: int, shape: BaselineInput
) -> tuple[float, list[float], int, list[str]]:
    """N baseline workflows at `concurrency`; (seconds, durations, completed, ids)."""
    task_queue = f"bench-baseline-{uuid.uuid4().hex[:6]}"
    worker = ChildProcess(
        "baseline-worker",
        [sys.executable, "-m", "bench.baseline", "--address", stack.temporal_address,
         "--task-queue", task_queue],
        env=stack.env,
        cwd=ROOT,
        log_file=stack.logs / "baseline.log",
    ).start()  # fmt: skip
    try:
        client = await Client.connect(stack.temporal_address)
        gate = asyncio.Semaphore(concurrency)
        durations: list[float] = []

        async def one(index: int) -> None:
            async with gate:
                started = time.perf_counter()
                await client.execute_workflow(
                    BASELINE_WORKFLOW,
                    shape,
                    id=f"{task_queue}-{index}",
                    task_queue=task_queue,
                )
                durations.append(time.perf_counter() - started)

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(concurrency))), 120)
        durations.clear()  # warm-up: the worker process's first tasks
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(concurrency, concurrency + count)))
        seconds = time.perf_counter() - started
        ids = [f"{task_queue}-{index}" for index in range(concurrency, concurrency + count)]
        return seconds, durations, len(durations), ids
    finally:
        worker.stop()


@dataclass
class EndpointPhase:
    """The second phase: the same journeys with one event endpoint configured."""

    journeys: list[Journey]
    seconds: float  # to the last journey
    drain: float  # then until the webhooks they caused were handled
    cpu: dict[str, float]  # until their events were delivered too
    events: DeliveryCheck
    engine: EngineFigures  # task waits of 20 of its journeys, beside the first phase's

    @property
    def rate(self) -> float:
        return sum(journey.done for journey in self.journeys) / (self.seconds + self.drain)


@dataclass
class Measured:
    """One phase of journeys without an endpoint: the first, and the control."""

    journeys: list[Journey]
    seconds: float  # to the last journey
    retries: Counter[str]
    drain: float  # then until the webhooks they caused were handled
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return sum(journey.done for journey in self.journeys) / (self.seconds + self.drain)

    def cpu_line(self) -> str:
        done = max(sum(journey.done for journey in self.journeys), 1)
        return ", ".join(
            f"{name} {used / done:.3f}"
            for name, used in sorted(self.cpu.items(), key=lambda item: -item[1])
        )


async def measured_journeys(stack: BenchStack, args: argparse.Namespace) -> Measured:
    """N journeys at concurrency C, and the CPU every process used for them. The run's
    work includes the webhooks it caused (they reach onramp after the journeys that
    caused them): its throughput is counted until they are handled."""
    cpu_before = stack.cpu()
    driver_before = time.process_time()
    journeys, seconds, retries = await run_journeys(
        stack, args.journeys, args.concurrency, args.journey_timeout
    )
    drain = await stack.webhooks_drained()
    cpu = {name: used - cpu_before.get(name, 0.0) for name, used in stack.cpu().items()}
    cpu["load driver (this process)"] = time.process_time() - driver_before
    return Measured(journeys, seconds, retries, drain, cpu)


async def endpoint_phase(stack: BenchStack, args: argparse.Namespace) -> EndpointPhase:
    """The journeys again, delivering their events to a healthy verifying receiver."""
    async with EventReceiver.running() as receiver:
        endpoint_id = await create_endpoint(stack, receiver, "bench journey load")
        cpu_before = stack.cpu()
        driver_before = time.process_time()
        journeys, seconds, _ = await run_journeys(
            stack, args.journeys, args.concurrency, args.journey_timeout
        )
        drain = await stack.webhooks_drained()
        events = await delivered_after(
            stack, receiver, endpoint_id, journeys, args.event_drain_timeout
        )
        cpu = {name: used - cpu_before.get(name, 0.0) for name, used in stack.cpu().items()}
        cpu["load driver (this process)"] = time.process_time() - driver_before
        # Its dispatcher would go on polling every second beside the baselines.
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as api:
            paused = await api.post(
                f"/v1/admin/event-endpoints/{endpoint_id}/pause",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            paused.raise_for_status()
        client = await Client.connect(stack.temporal_address)
        engine = await engine_figures(client, journey_workflows(journeys, sample=20))
    return EndpointPhase(journeys, seconds, drain, cpu, events, engine)


def endpoint_lines(
    phase: EndpointPhase,
    rate: float,
    cpu: dict[str, float],
    done: int,
    engine: EngineFigures,
    args: argparse.Namespace,
) -> list[str]:
    """The comparison of the two phases, and the endpoint's deliveries."""
    finished = [journey for journey in phase.journeys if journey.done]
    ratio = phase.rate / rate if rate else 0.0
    window = phase.seconds + phase.drain
    with_events = len(finished) / (phase.seconds + phase.events.drain_seconds)
    lines = [
        "with one event endpoint (second phase; what differs: an endpoint for every event "
        "type, its dispatcher polling the outbox each second and delivering each batch, "
        "the receiver in the load driver's process; the database and Temporal already "
        "hold the first phase's journeys):",
        f"  journeys: {len(finished)} completed in {phase.seconds:.1f} s, and the webhooks "
        f"they caused handled {phase.drain:.1f} s later: {phase.rate:.2f} journeys/s over "
        f"{window:.1f} s (without the endpoint: {rate:.2f}/s); counted until the last event "
        f"was delivered too: {with_events:.2f}/s",
        f"  journeys/s with the endpoint / the first phase's without it: {ratio:.2f}",
        latency_line("  pay → provisioned", [j.pay_to_provisioned for j in finished]),
        "  CPU seconds per journey, without → with: "
        + ", ".join(
            f"{name} {cpu.get(name, 0.0) / max(done, 1):.3f} → {used / max(len(finished), 1):.3f}"
            for name, used in sorted(phase.cpu.items(), key=lambda item: -item[1])
        ),
        f"  a journey's tasks (mean of 20), without: {engine.line()}",
        f"  with: {phase.engine.line()}",
    ]
    return lines + [f"  {line}" for line in phase.events.lines()]


async def run(args: argparse.Namespace) -> int:
    async with BenchStack.running(keep=args.keep) as stack:
        await stack.wait_ready()
        # Warm-up: the first requests of each process compile and connect.
        warm, _, _ = await run_journeys(stack, args.concurrency // 5 or 1, 10, 120)
        await stack.webhooks_drained()
        hashing_before = await Hashing.before(stack)
        first = await measured_journeys(stack, args)
        journeys, seconds, retries, drain, cpu = (
            first.journeys,
            first.seconds,
            first.retries,
            first.drain,
            first.cpu,
        )
        hashing = await hashing_before.since(stack)
        phase: EndpointPhase | None = None
        control: Measured | None = None
        if args.event_endpoint:
            phase = await endpoint_phase(stack, args)
            # The control: the same journeys again without the endpoint (paused), on a
            # database and a Temporal that now hold both earlier phases' journeys. The
            # endpoint phase is compared with the mean of the first and this one, which
            # cancels the drift from one phase to the next.
            control = await measured_journeys(stack, args)
        later = (phase.journeys if phase else []) + (control.journeys if control else [])
        invariants = await check_invariants(stack, warm + journeys + later)
        client = await Client.connect(stack.temporal_address)
        engine = await engine_figures(client, journey_workflows(journeys, sample=20))
        timelines = await slowest_timelines(client, journeys, 5)
        shape = BaselineInput(
            activities=round(engine.activities), local_activities=round(engine.local_activities)
        )
        base_seconds, base_durations, base_done, base_ids = await run_baseline(
            stack, args.journeys, args.concurrency, shape
        )
        base_engine = await engine_figures(client, [[wid] for wid in base_ids[:20]])
        # The literal baseline, for context: as many activities, all regular.
        regular = BaselineInput(activities=shape.activities + shape.local_activities)
        regular_seconds, _, regular_done, _ = await run_baseline(
            stack, args.journeys, args.concurrency, regular
        )

    done = [journey for journey in journeys if journey.done]
    window = seconds + drain
    rate = len(done) / window
    base_rate = base_done / base_seconds
    ratio = rate / base_rate if base_rate else 0.0
    regular_rate = regular_done / regular_seconds
    latencies = [journey.pay_to_provisioned for journey in done]
    whole = [journey.finished - journey.started for journey in done]
    p99 = percentile(latencies, 0.99)

    print(
        f"journey load: {args.journeys} journeys at concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs, every process on this machine"
    )
    print(
        f"journeys: {len(done)} completed in {seconds:.1f} s, and the webhooks they caused "
        f"handled {drain:.1f} s later: {rate:.2f} journeys/s over {window:.1f} s "
        f"({len(done) / seconds:.2f}/s to the last journey alone)"
    )
    print(latency_line("pay → provisioned", latencies))
    print(latency_line("whole journey (signup → dashboard)", whole))
    print(
        f"CPU seconds during the run (of {window * (os.cpu_count() or 1):.0f} available): "
        + ", ".join(f"{name} {used:.1f}" for name, used in sorted(cpu.items(), key=lambda x: -x[1]))
    )
    print(hashing.line(window * (os.cpu_count() or 1)))
    print(f"client retries: {sum(retries.values())} {dict(retries.most_common(5))}")
    print(
        f"per journey (mean of 20): {engine.activities:.1f} activities, "
        f"{engine.local_activities:.1f} local activities, {engine.signals:.1f} signals; "
        + engine.line()
    )
    print(
        f"baseline ({shape.activities} no-op activities + {shape.local_activities} local "
        f"per workflow): {base_done} in "
        f"{base_seconds:.1f} s = {base_rate:.2f} workflows/s; "
        + latency_line("workflow", base_durations)
    )
    print(f"baseline tasks: {base_engine.line()}")
    print("slowest pay → provisioned, what the workflows did (s after the payment):")
    for line in timelines:
        print(line)
    print(
        f"baseline of {regular.activities} regular no-op activities (no local ones): "
        f"{regular_rate:.2f} workflows/s; journeys / it: {rate / regular_rate:.2f} (context)"
    )
    # Beside the figures, not instead of them (the hash is never weakened): the same
    # run's work without the hashing's CPU, at the same utilisation of the machine.
    used = sum(cpu.values())
    unhashed = len(done) / (window * (used - hashing.cpu) / used) if used > hashing.cpu else 0.0
    print(
        f"without argon2id's {hashing.cpu:.1f} CPU-s (an estimate, for context): "
        f"{unhashed:.2f} journeys/s; / same-shape baseline {unhashed / base_rate:.2f}, "
        f"/ all-regular baseline {unhashed / regular_rate:.2f}"
    )
    print(
        f"throughput ratio journeys / same-shape baseline: {ratio:.2f} (target ≥ {args.min_ratio})"
    )
    print(f"p99 pay → provisioned: {p99:.2f} s (target < {args.max_p99} s)")
    for line in invariants.lines():
        print(line)
    for journey in journeys + later:
        if journey.error:
            print(f"  journey {journey.index} failed: {journey.error}")
    ok = invariants.hold and ratio >= args.min_ratio and p99 < args.max_p99
    if phase is not None and control is not None:
        for line in endpoint_lines(phase, rate, cpu, len(done), engine, args):
            print(line)
        without = (rate + control.rate) / 2
        print(
            f"  control, the journeys again without the endpoint (paused; third phase): "
            f"{control.rate:.2f} journeys/s; with the endpoint / the mean of the phases "
            f"without it ({rate:.2f} before, {control.rate:.2f} after: {without:.2f}): "
            f"{phase.rate / without:.2f} (target ≥ {args.min_endpoint_ratio})"
        )
        print(f"  CPU seconds per journey in the third phase: {control.cpu_line()}")
        endpoint_ok = phase.events.hold and phase.rate >= args.min_endpoint_ratio * without
        print(f"with the endpoint: {'met' if endpoint_ok else 'NOT MET'}")
        ok = ok and endpoint_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--journeys", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--journey-timeout", type=float, default=300.0, help="seconds each")
    parser.add_argument("--min-ratio", type=float, default=0.6)
    parser.add_argument("--max-p99", type=float, default=5.0, help="seconds")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")
    parser.add_argument(
        "--event-endpoint",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a second phase with one event endpoint",
    )
    parser.add_argument("--min-endpoint-ratio", type=float, default=0.9)
    parser.add_argument(
        "--event-drain-timeout", type=float, default=300.0, help="seconds after the journeys"
    )
    args = parser.parse_args()
    bound = 1800 + (
        2 * args.journey_timeout + args.event_drain_timeout if args.event_endpoint else 0
    )
    raise SystemExit(asyncio.run(asyncio.wait_for(run(args), timeout=bound)))


if __name__ == "__main__":
    main()
