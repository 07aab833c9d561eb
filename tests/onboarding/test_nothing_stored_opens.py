"""Nothing stored opens anything: after full journeys — signup, an onboarding
link opened (and Stripe's refresh), checkout paid, password set — every value of every
table is read back (text, json and bytea alike) and holds no onboarding token, no
Connect state, no account link, no set-password token and no password.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from onramp import tokens
from tests.checkout import conftest as checkout_fixtures
from tests.checkout.conftest import CheckoutStack, OpenStack, link_in
from tests.support.harness import TOKEN_SECRET, auth

pytestmark = pytest.mark.slow


PASSWORD = "correct horse battery staple 7"

# The checkout stack (worker in this process, API over HTTP, SMTP sink), shared by name.
checkout_stack = checkout_fixtures.checkout_stack
catalog = checkout_fixtures.catalog
mail = checkout_fixtures.mail


async def _every_value(db: asyncpg.Pool) -> list[str]:
    """A dump of the public schema: each value of each row as text (bytea decoded)."""
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    values: list[str] = []
    for table in tables:
        name = table["table_name"]
        rows = await db.fetch(f'SELECT * FROM "{name}"')  # noqa: S608
        for row in rows:
            for value in row.values():
                values.append(_text(value))
    return values


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw.decode("utf-8", errors="replace") + " " + raw.hex()
    return str(value)


async def _onboarding(stack: CheckoutStack, user_id: str) -> dict[str, str]:
    issued = await stack.api.post(f"/v1/users/{user_id}/onboarding", headers=auth())
    assert issued.status_code == 201, issued.text
    token = parse_qs(urlsplit(issued.json()["url"]).query)["token"][0]
    opened = await stack.api.get(
        "/v1/onboard", params={"token": token}, headers={"Accept": "application/json"}
    )
    assert opened.status_code == 200, opened.text
    link = opened.json()["url"]
    token_id = await stack.db.fetchval(
        "SELECT id::text FROM onboarding_tokens WHERE user_id = $1 AND status = 'in_progress'",
        uuid.UUID(user_id),
    )
    state = tokens.derive_token(TOKEN_SECRET, tokens.CONNECT_STATE, token_id)
    refreshed = await stack.api.get(
        "/v1/connect/refresh", params={"state": state}, headers={"Accept": "application/json"}
    )
    assert refreshed.status_code == 200, refreshed.text
    return {
        "onboarding token": token,
        "connect state": state,
        "account link": link,
        "account link token": urlsplit(link).path.rsplit("/", 1)[-1],
        "refreshed account link": refreshed.json()["url"],
    }


async def _checkout_and_password(stack: CheckoutStack, user_id: str, address: str) -> str:
    started = await stack.checkout(user_id)
    paid = await stack.pay(started["checkout_session_id"])
    assert paid.status_code == 200, paid.text
    await stack.wait_status(user_id, lambda body: body["next_action"] == "set_password")
    messages = stack.mail.to(address)
    assert len(messages) == 1
    token = parse_qs(urlsplit(link_in(messages[0])).query)["token"][0]
    done = await stack.api.post(
        "/v1/portal/set-password", json={"token": token, "password": PASSWORD}
    )
    assert done.status_code == 204, done.text
    return token


async def test_a_dump_after_full_journeys_holds_no_token_state_link_or_password(
    checkout_stack: OpenStack,
) -> None:
    secrets: dict[str, str] = {}
    async with checkout_stack() as stack:
        for n in range(2):
            user_id, address = await stack.signup()
            for what, value in (await _onboarding(stack, user_id)).items():
                secrets[f"{what} {n}"] = value
            secrets[f"set-password token {n}"] = await _checkout_and_password(
                stack, user_id, address
            )
        secrets["password"] = PASSWORD
        # The journeys left their traces (so the search below looks at real rows).
        assert await stack.db.fetchval("SELECT count(*) FROM onboarding_tokens") > 0
        dump = await _every_value(stack.db)

    assert len(dump) > 100
    for what, value in secrets.items():
        assert len(value) >= 20, what
        found = [cell for cell in dump if value in cell]
        assert not found, f"{what} is stored in the clear"
