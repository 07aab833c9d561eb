"""The payload codec's cost: the same journey load without and with encryption, in one run.

Each mode runs on a fresh embedded stack (bench/stack.py: every service a process of its
own on 127.0.0.1), so neither inherits the other's database or history: `plain` with no
`ONRAMP_PAYLOAD_KEYS`, `encrypted` with one key on the API and the worker (every
payload sealed with AES-256-GCM, failures' text too). With `--rounds 2` the modes
alternate plain, encrypted, plain, encrypted, so the machine's drift over the run falls
on both. Each stack warms up first (a fifth of the concurrency in journeys), then runs
N journeys (bench/journeys.py) at concurrency C and waits until the webhooks they caused
are handled; the throughput counts that whole window, as bench/journey_load.py does.

Prints, per mode: completed journeys/s, pay → provisioned latency, the worker's and
the API's CPU per journey, and the encoding found in a journey's history (the proof the
mode was what it says); then the ratio encrypted / plain, and for context the codec's
own time per payload measured in this process. Exit 0 when every journey completed and
the invariants hold in both modes.

    .venv/bin/python bench/codec_cost.py [--journeys 60] [--concurrency 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.journeys import (  # noqa: E402
    Journey,
    check_invariants,
    latency_line,
    run_journeys,
)
from bench.stack import BenchStack  # noqa: E402
from onramp.payload_codec import onramp_data_converter  # noqa: E402
from onramp.settings import parse_payload_keys  # noqa: E402
from workflows.contracts.signup import SignupInput, signup_workflow_id  # noqa: E402

# A key for this run only (the stacks are deleted afterwards).
BENCH_KEYS = "bench-1:" + base64.b64encode(os.urandom(32)).decode()
MODES = {"plain": None, "encrypted": BENCH_KEYS}


@dataclass
class ModeFigures:
    """What one mode's rounds added up to."""

    name: str
    completed: int = 0
    started: int = 0
    seconds: float = 0.0  # journeys and the webhook drain after them, every round
    latencies: list[float] = field(default_factory=list)
    worker_cpu: float = 0.0
    api_cpu: float = 0.0
    encodings: set[str] = field(default_factory=set)
    invariants_hold: bool = True
    failures: list[str] = field(default_factory=list)
    round_rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        per = max(self.completed, 1)
        return [
            f"{self.name}: {self.completed}/{self.started} journeys in {self.seconds:.1f} s "
            f"(webhooks handled included) = {self.rate:.2f} journeys/s; by round: "
            + ", ".join(f"{rate:.2f}" for rate in self.round_rates),
            "  " + latency_line("pay → provisioned", self.latencies),
            f"  CPU per journey: worker {1000 * self.worker_cpu / per:.0f} ms, "
            f"API {1000 * self.api_cpu / per:.0f} ms",
            f"  a signup's input in Temporal: encoding {', '.join(sorted(self.encodings))}",
        ]


async def run_mode(figures: ModeFigures, keys: str | None, args: argparse.Namespace) -> None:
    """One round of one mode on a fresh stack, added to `figures`."""
    # BenchStack hands its own environment (this process's, plus its settings) to the
    # API and the worker: the key goes there, for this stack only.
    previous = os.environ.pop("ONRAMP_PAYLOAD_KEYS", None)
    if keys is not None:
        os.environ["ONRAMP_PAYLOAD_KEYS"] = keys
    try:
        async with BenchStack.running(keep=args.keep) as stack:
            await stack.wait_ready()
            await run_journeys(stack, max(args.concurrency // 5, 1), 10, args.journey_timeout)
            await stack.webhooks_drained()
            cpu_before = stack.cpu()
            journeys, seconds, _ = await run_journeys(
                stack, args.journeys, args.concurrency, args.journey_timeout
            )
            drain = await stack.webhooks_drained()
            cpu = stack.cpu()
            invariants = await check_invariants(stack, journeys)
            figures.encodings |= await _input_encodings(stack, journeys)
    finally:
        os.environ.pop("ONRAMP_PAYLOAD_KEYS", None)
        if previous is not None:
            os.environ["ONRAMP_PAYLOAD_KEYS"] = previous
    done = [journey for journey in journeys if journey.done]
    figures.completed += len(done)
    figures.started += len(journeys)
    figures.seconds += seconds + drain
    figures.round_rates.append(len(done) / (seconds + drain))
    figures.latencies += [journey.pay_to_provisioned for journey in done]
    figures.worker_cpu += cpu["worker"] - cpu_before.get("worker", 0.0)
    figures.api_cpu += cpu["api"] - cpu_before.get("api", 0.0)
    figures.invariants_hold = figures.invariants_hold and invariants.hold
    if not invariants.hold:
        figures.failures += invariants.lines()
    figures.failures += [f"journey {j.index}: {j.error}" for j in journeys if j.error]


async def _input_encodings(stack: BenchStack, journeys: list[Journey]) -> set[str]:
    """The `encoding` of the first completed journey's signup input, as Temporal stores it."""
    done = [journey for journey in journeys if journey.done]
    if not done:
        return set()
    client = await Client.connect(stack.temporal_address)  # no codec: the stored bytes
    history = await client.get_workflow_handle(signup_workflow_id(done[0].user_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    return {payload.metadata["encoding"].decode() for payload in started.input.payloads}


async def codec_microseconds(rounds: int = 2000) -> tuple[float, int]:
    """Encode + decode of a signup input through the data converter, µs per payload
    added by the codec (the best of five alternating measurements, after a warm-up), and
    the sealed payload's size in bytes: context for the journey figures."""
    plain = onramp_data_converter()
    sealed = onramp_data_converter(parse_payload_keys(BENCH_KEYS))
    value = SignupInput(user_id="0" * 36, email="bench-0000@example.com", username="bench")

    async def per_payload(converter: DataConverter, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            payloads = await converter.encode([value])
            await converter.decode(payloads, [SignupInput])
        return (time.perf_counter() - started) / count * 1e6

    for converter in (plain, sealed):
        await per_payload(converter, rounds // 10)
    best = {id(converter): float("inf") for converter in (plain, sealed)}
    for _ in range(5):
        for converter in (plain, sealed):
            best[id(converter)] = min(best[id(converter)], await per_payload(converter, rounds))
    size = len((await sealed.encode([value]))[0].SerializeToString())
    return best[id(sealed)] - best[id(plain)], size


async def run(args: argparse.Namespace) -> int:
    figures = {name: ModeFigures(name) for name in MODES}
    for _ in range(args.rounds):
        for name, keys in MODES.items():
            await run_mode(figures[name], keys, args)
    plain, encrypted = figures["plain"], figures["encrypted"]
    overhead_us, size = await codec_microseconds()

    print(
        f"codec cost: {args.journeys} journeys at concurrency {args.concurrency} per mode "
        f"and round, {args.rounds} round(s), {os.cpu_count()} CPUs, every process on "
        "this machine, a fresh stack per mode and round"
    )
    for mode in (plain, encrypted):
        for line in mode.lines():
            print(line)
    ratio = encrypted.rate / plain.rate if plain.rate else 0.0
    print(f"throughput encrypted / plain: {ratio:.2f}")
    print(
        f"the codec alone (this process): +{overhead_us:.0f} µs per payload encoded and "
        f"decoded; a sealed signup input is {size} bytes"
    )
    for mode in (plain, encrypted):
        for line in mode.failures:
            print(f"  {mode.name}: {line}")
    proved = plain.encodings == {"json/plain"} and encrypted.encodings == {"binary/encrypted"}
    ok = proved and all(m.completed == m.started and m.invariants_hold for m in (plain, encrypted))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journeys", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="plain then encrypted, repeated")
    parser.add_argument("--journey-timeout", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the stacks' files")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
