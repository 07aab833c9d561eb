"""Re-dispatch stored Stripe events: `python -m api.webhooks.replay` (`onramp webhooks replay`).

Selects `pending` and/or `failed` rows of the inbox (optionally by id and by the time
they were received) and runs each through the same dispatcher code as the API's inbox
dispatcher, claiming it with a lease (its backoff is ignored; a row a dispatcher holds
right now is counted `busy`), so a replay is idempotent: a row that became final
meanwhile is skipped, and receivers deduplicate by event id. The API's dispatchers
retry pending rows by themselves; the replay is for operators (`failed` rows, or no API
running). Stops at the first row Temporal cannot take (it is down: the
rest would wait for the same timeout) and exits 1 when anything is left undispatched.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from api.temporal_gateway import TemporalGateway
from api.webhooks.dispatch import Dispatcher
from onramp.db import create_pool
from onramp.logging import configure_logging
from onramp.repositories import webhook_events as webhook_inbox
from onramp.settings import (
    CommonSettings,
    PayloadCodecSettings,
    StripeSettings,
    TemporalDeadlineSettings,
    load_settings,
)

EXIT_OK = 0
EXIT_UNDISPATCHED = 1


class ReplaySettings(
    CommonSettings, TemporalDeadlineSettings, StripeSettings, PayloadCodecSettings
):
    """Postgres, Temporal (with the payload keys: what it signals is encrypted like the
    API's), and `STRIPE_SECRET_KEY` for the service's livemode."""


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onramp webhooks replay",
        description="Re-dispatch stored Stripe events to their workflows (idempotent).",
    )
    parser.add_argument("--failed", action="store_true", help="rows marked failed")
    parser.add_argument("--pending", action="store_true", help="rows still pending")
    parser.add_argument(
        "--id", dest="event_ids", action="append", default=[], metavar="EVT", help="repeatable"
    )
    parser.add_argument("--since", type=_timestamp, help="received at or after (ISO 8601)")
    parser.add_argument("--until", type=_timestamp, help="received before (ISO 8601)")
    return parser


async def replay(
    settings: ReplaySettings,
    statuses: Sequence[Literal["pending", "failed"]],
    *,
    event_ids: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Counter[str]:
    """Dispatch the selected rows and count their outcomes, plus `left_pending` and
    `not_selected` (ids asked for that are unknown, final or out of the time range)."""
    counts: Counter[str] = Counter()
    pool = await create_pool(settings.database_url.get_secret_value(), max_size=2)
    try:
        selected = await webhook_inbox.list_replayable(
            pool, statuses, event_ids=event_ids, since=since, until=until
        )
        counts["not_selected"] = len(set(event_ids) - set(selected)) if event_ids else 0
        gateway = TemporalGateway(
            settings.temporal_address,
            settings.temporal_namespace,
            timedelta(seconds=settings.temporal_rpc_timeout_seconds),
            payload_keys=settings.onramp_payload_keys,
        )
        dispatcher = Dispatcher(
            pool,
            gateway,
            task_queue=settings.temporal_task_queue,
            livemode=settings.stripe_livemode,
            via="replay",
        )
        for position, event_id in enumerate(selected):
            result = await dispatcher.replay_one(event_id, list(statuses))
            counts[result.outcome] += 1
            if result.outcome == "unavailable":
                counts["left_pending"] = len(selected) - position - 1
                break
    finally:
        await pool.close()
    return counts


def summary(counts: Counter[str]) -> str:
    parts = [
        f"{name} {counts[name]}"
        for name in (
            "dispatched",
            "orphaned",
            "ignored",
            "failed",
            "unavailable",
            "busy",
            "duplicate",
            "left_pending",
            "not_selected",
        )
    ]
    line = "webhooks replay: " + ", ".join(parts)
    if counts["unavailable"]:
        line += " (Temporal is unreachable: run the replay again when it is back)"
    return line


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    statuses: list[Literal["pending", "failed"]] = []
    if args.pending or not args.failed:
        statuses.append("pending")
    if args.failed or not args.pending:
        statuses.append("failed")
    settings = load_settings(ReplaySettings)
    configure_logging(settings.log_level, log_format=settings.log_format)
    counts = asyncio.run(
        replay(settings, statuses, event_ids=args.event_ids, since=args.since, until=args.until)
    )
    sys.stdout.write(summary(counts) + "\n")
    undispatched = counts["unavailable"] + counts["failed"] + counts["busy"]
    return EXIT_UNDISPATCHED if undispatched else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
