"""Repositories: plain SQL, one module per table, each returning its own row models.

Every statement on a table lives in that table's module, so one file says who reads and
writes it. A write that must touch several tables at once takes a connection and is
composed in one transaction by its caller (an activity, or a small module named for
that unit of work: `onramp.checkout`, `onramp.onboarding`, `onramp.billing`).

Row models belong to the database, not to workflow history: activities map them to the
contract types they return, so a column added here changes no recorded history.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection taken from the pool (`pool.acquire()`) or a plain one.
Connection = asyncpg.Connection | PoolConnectionProxy
# Anything a single statement can run on.
Db = asyncpg.Pool | Connection
