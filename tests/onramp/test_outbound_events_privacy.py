"""No token, password or card data in any event body.

Twice: every catalogue model's fields (names and types: ids, states, flags, counts and
times only), and the rows a journey through every change really wrote (none carries a
secret the journey used, nor anything shaped like a card number or a Stripe secret).
"""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from pydantic import SecretBytes, SecretStr

from activities.users import UserActivities
from onramp import events
from onramp.passwords import SET_PASSWORD
from onramp.tokens import derive_token, derive_token_hash
from tests.onramp.test_outbound_events import PASSWORD_HASH, events_of, journey
from tests.support.harness import TOKEN_SECRET
from workflows.contracts.common import UserRef

# A text field is an id (`*_id`), or one of these states, reasons, tiers and names.
STATE_FIELDS = {
    "status",
    "tier",
    "from_tier",
    "to_tier",
    "billing_cycle",
    "payment_state",
    "provisioning_state",
    "password_state",
    "failed_step",
    "disabled_reason",
    "requirements_due",
}
SCALARS = (bool, int, datetime)
# Anything shaped like a card number, or one of Stripe's or Standard Webhooks' secrets.
LEAKS = re.compile(
    r"\b\d{13,19}\b|whsec_|sk_(?:test|live)_|rk_(?:test|live)_|_secret_|\$argon2|"
    r"pm_card|tok_|\bcvc\b|exp_month|@",
    re.IGNORECASE,
)


def _leaves(annotation: Any) -> list[Any]:
    """The types a field's annotation is made of (through unions, Literal, list)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [type(value) for value in typing.get_args(annotation)]
    if origin in (typing.Union, types.UnionType, list):
        return [leaf for arg in typing.get_args(annotation) for leaf in _leaves(arg)]
    return [annotation]


@pytest.mark.parametrize("event_type", sorted(events.CATALOGUE))
def test_every_model_holds_ids_and_states_only(event_type: str) -> None:
    model = events.CATALOGUE[event_type]
    assert event_type == model.TYPE and model.VERSION >= 1
    assert model.model_config.get("extra") == "forbid"
    for name, field in model.model_fields.items():
        leaves = _leaves(field.annotation)
        for leaf in leaves:
            assert leaf not in (SecretStr, SecretBytes, bytes), (event_type, name)
            assert leaf in (str, type(None), *SCALARS), (event_type, name, leaf)
        # Text is an id or a state; flags, counts and times are what they are.
        if str in leaves:
            assert name.endswith("_id") or name in STATE_FIELDS, (event_type, name)


def test_a_model_that_would_carry_a_secret_is_refused() -> None:
    for name in ("token", "password", "card_last4", "signing_secret", "api_key", "email"):
        with pytest.raises(TypeError, match="never carries"):
            type(
                "Leaky",
                (events.EventData,),
                {"__annotations__": {name: "str"}, "TYPE": "leaky", "__module__": __name__},
            )


async def test_no_secret_in_any_row_a_journey_wrote(db_pool: asyncpg.Pool) -> None:
    done = await journey(db_pool)
    rows = await events_of(db_pool, done.user_id)
    assert {row.type for row in rows} == set(events.CATALOGUE)
    user = await UserActivities(db_pool).read_user(UserRef(user_id=done.user_id))
    secrets = {
        "password hash": PASSWORD_HASH,
        "token": derive_token(TOKEN_SECRET, SET_PASSWORD, done.password_token_id),
        "token hash": derive_token_hash(TOKEN_SECRET, SET_PASSWORD, done.password_token_id),
        "token id": done.password_token_id,
        "email": user.email,
        "username": user.username,
    }
    for row in rows:
        body = json.dumps(row.data)
        for what, value in secrets.items():
            assert value not in body, (row.type, what)
        assert LEAKS.search(body) is None, (row.type, body)
        # The stored body is exactly its catalogue model: nothing beside its fields.
        assert events.parse(row).model_dump(mode="json") == row.data
