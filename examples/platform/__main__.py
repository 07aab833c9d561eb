"""`python -m examples.platform receiver|worker`: run one half of the example platform.

    ONRAMP_EVENTS_SECRET=whsec_… python -m examples.platform receiver --port 8100
    PLATFORM_TASK_QUEUE=platform-provisioning python -m examples.platform worker

(`onramp dev --example` starts both and wires them to onramp; see README.md here.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from examples.platform.receiver import run_receiver
from examples.platform.worker import run_worker


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    halves = parser.add_subparsers(dest="half", required=True)
    receiver = halves.add_parser("receiver", help="receive and verify onramp's events")
    receiver.add_argument("--host", default="127.0.0.1")
    receiver.add_argument("--port", type=int, default=8100)
    halves.add_parser("worker", help="provision tenants for onramp's provisioning hook")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if arguments.half == "receiver":
        run_receiver(arguments.host, arguments.port)
    else:
        asyncio.run(run_worker())


main()
