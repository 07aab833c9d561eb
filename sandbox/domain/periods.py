"""Billing periods: adding day/week/month/year intervals the way Stripe anchors them."""

from __future__ import annotations

import calendar
import datetime as dt


def add_interval(start: int, interval: str, count: int, anchor: int) -> int:
    """`start` plus `count` intervals; months keep the anchor's day (clamped to month end)."""
    if interval == "day":
        return start + 86_400 * count
    if interval == "week":
        return start + 7 * 86_400 * count
    months = count * (12 if interval == "year" else 1)
    base = dt.datetime.fromtimestamp(start, dt.UTC)
    anchor_day = dt.datetime.fromtimestamp(anchor, dt.UTC).day
    month_index = base.month - 1 + months
    year, month = base.year + month_index // 12, month_index % 12 + 1
    day = min(anchor_day, calendar.monthrange(year, month)[1])
    return int(base.replace(year=year, month=month, day=day).timestamp())
