"""The `email_outbox` table: every email the service sends, by template and ids only
(never a token or a link). The Message-ID derives from the row's id, so a retried send
is recognisable.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from onramp.repositories import Db


class OutboxRow(BaseModel):
    id: str
    template: str
    user_id: str
    refs: dict[str, str]
    message_id: str
    status: str


async def claim_outbox(
    db: Db,
    outbox_id: str,
    template: str,
    user_id: str,
    refs: dict[str, str],
    message_id: str,
) -> OutboxRow:
    """Insert the outbox row once (a retry finds its own row) and count the attempt."""
    row = await db.fetchrow(
        """
        INSERT INTO email_outbox (id, template, user_id, refs, message_id, attempts)
        VALUES ($1, $2, $3, $4::jsonb, $5, 1)
        ON CONFLICT (id) DO UPDATE SET attempts = email_outbox.attempts + 1
        RETURNING id::text AS id, template, user_id::text AS user_id, refs, message_id, status
        """,
        outbox_id,
        template,
        user_id,
        json.dumps(refs),
        message_id,
    )
    assert row is not None
    values: dict[str, Any] = dict(row)
    values["refs"] = json.loads(values["refs"]) if isinstance(values["refs"], str) else {}
    return OutboxRow.model_validate(values)


async def mark_outbox_sent(db: Db, outbox_id: str) -> None:
    await db.execute(
        "UPDATE email_outbox SET status = 'sent', sent_at = now() "
        "WHERE id = $1 AND status = 'pending'",
        outbox_id,
    )
