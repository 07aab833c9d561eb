"""Fuzz run: every operation of the HTTP API, with many schemathesis examples.

Runs `tests/api/test_fuzz.py` (the API served over HTTP by uvicorn, with the real worker,
the Stripe sandbox, embedded Postgres and the Temporal dev server behind it) with
`--examples` generated requests per operation and pass, then prints the figures the test
wrote: operations fuzzed, requests sent, server errors, error-shape violations,
schemathesis conformance failures, and the statuses each operation answered. The
pytest output (with every problem found, in one message) is shown above them. Exits 0
when there was no problem at all, 1 otherwise.

    .venv/bin/python bench/fuzz_api.py [--examples 200] [--statuses]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/api/test_fuzz.py"


def run_fuzz(examples: int, report: Path) -> int:
    """pytest on the fuzz test; its return code."""
    env = {**os.environ, "ONRAMP_FUZZ_EXAMPLES": str(examples), "ONRAMP_FUZZ_REPORT": str(report)}
    # About a second per example on two cores; the default 300 s would cut long runs.
    timeout = 300 + 3 * examples
    command = [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"]
    command += ["--timeout", str(timeout), "--show-capture=no"]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def print_figures(summary: dict[str, Any], elapsed: float, statuses: bool) -> None:
    requests = summary["requests"]
    seconds = summary["seconds"] or elapsed
    print()
    print(f"examples per operation and pass  {summary['examples_per_operation']}")
    print(f"operations fuzzed                {summary['operations']}")
    print(f"requests sent                    {requests} ({requests / seconds:.0f}/s)")
    print(f"server errors (5xx)              {summary['server_errors']}")
    print(f"error-shape violations           {summary['shape_violations']}")
    print(f"conformance failures             {summary['conformance_failures']}")
    print(f"transport errors                 {summary['transport_errors']}")
    print(f"fuzzing time                     {seconds:.1f} s (whole run {elapsed:.1f} s)")
    if statuses:
        print()
        for operation, counts in summary["statuses"].items():
            answered = "  ".join(f"{status}:{n}" for status, n in counts.items())
            print(f"  {operation:<58} {answered}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--examples", type=int, default=200, help="generated requests per operation and pass"
    )
    parser.add_argument(
        "--statuses", action="store_true", help="also print the statuses of each operation"
    )
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    with tempfile.TemporaryDirectory(prefix="onramp-fuzz-") as directory:
        report = Path(directory) / "fuzz.json"
        started = time.monotonic()
        code = run_fuzz(args.examples, report)
        elapsed = time.monotonic() - started
        if not report.exists():
            print(f"\nno figures: the fuzz test did not finish (pytest exit {code})")
            return 1
        summary: dict[str, Any] = json.loads(report.read_text())
    print_figures(summary, elapsed, args.statuses)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
