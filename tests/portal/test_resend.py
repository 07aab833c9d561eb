"""Resend, on a running stack with the SMTP capture: an expired link gets a new email
whose link works while the old one stops working; twenty requests for one address send
one or a few emails; an unknown address gets exactly the same answer."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from api.routes.password_links import RESEND_PER_ACCOUNT_PER_HOUR, RESEND_PER_CLIENT_PER_MINUTE
from onramp.tokens import hash_token
from onramp.view_tokens import issue_view_token
from tests.checkout.conftest import OpenStack, link_in, state_of
from tests.portal.conftest import mail_to, paid_user, token_of
from tests.support.harness import TOKEN_SECRET
from tests.support.histories import record_history
from tests.support.polling import eventually
from workflows.contracts.password_link import PasswordLinkResult, password_link_workflow_id

pytestmark = pytest.mark.slow

RESEND = "/v1/portal/set-password/resend"
HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
GOOD = "violet kettle orbit lantern"


async def test_an_expired_link_gets_a_new_one_and_the_old_stops_working(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, address, first = await paid_user(stack)
        await stack.db.execute(
            "UPDATE password_tokens SET expires_at = now() - interval '1 minute'"
            " WHERE token_hash = $1",
            hash_token(token_of(first)),
        )
        gone = await stack.api.get(first, headers=HTML)
        assert gone.status_code == 410 and "Email me a new link" in gone.text

        # The page's form: the expired link's token, posted as a browser would.
        asked = await stack.api.post(RESEND, data={"token": token_of(first)}, headers=HTML)
        assert asked.status_code == 202, asked.text
        assert "we sent a new link to its address" in asked.text
        second_mail = (await mail_to(stack, address, 2))[1]
        assert second_mail["X-Onramp-Template"] == "set_password_link"
        second = link_in(second_mail)
        assert token_of(second) != token_of(first)
        assert (await stack.api.get(second, headers=HTML)).status_code == 200
        await record_history(
            stack.temporal, password_link_workflow_id(user_id), "password_link_sent"
        )

        # A link sent earlier stops working once a newer one is sent, expired or not.
        again = await stack.api.post(RESEND, json={"email": address.upper()})
        assert again.status_code == 202, again.text
        third = link_in((await mail_to(stack, address, 3))[2])
        for earlier in (first, second):
            assert (await stack.api.get(earlier, headers=HTML)).status_code == 410
            refused = await stack.api.post(
                "/v1/portal/set-password", json={"token": token_of(earlier), "password": GOOD}
            )
            assert refused.status_code == 410, refused.text
        done = await stack.api.post(
            "/v1/portal/set-password", json={"token": token_of(third), "password": GOOD}
        )
        assert done.status_code == 204, done.text
        assert state_of(await stack.status(user_id))[3] == "go_to_dashboard"

        # The password is set: asking again sends nothing, with the same answer.
        after = await stack.api.post(RESEND, json={"email": address})
        assert (after.status_code, after.json()) == (202, {"status": "accepted"})
        # The run starts after the answer: wait for the one that decided "password set".
        handle = stack.temporal.get_workflow_handle(
            password_link_workflow_id(user_id), result_type=PasswordLinkResult
        )
        result = await eventually(
            handle.result,
            lambda found: found.reason == "password_set",
        )
        assert result.sent is False
        assert len(stack.mail.to(address)) == 3


async def test_twenty_requests_for_one_address_send_one_or_a_few_emails(
    checkout_stack: OpenStack,
) -> None:
    async with checkout_stack() as stack:
        user_id, address, _ = await paid_user(stack)
        answers = [
            (await stack.api.post(RESEND, json={"email": address})).status_code for _ in range(20)
        ]
        # Per client address: 429 past the minute's allowance; never per account.
        assert answers[:RESEND_PER_CLIENT_PER_MINUTE] == [202] * RESEND_PER_CLIENT_PER_MINUTE
        assert set(answers[RESEND_PER_CLIENT_PER_MINUTE:]) == {429}
        await mail_to(stack, address, 2)
        sent = await stack.db.fetchval(
            "SELECT count(*) FROM email_outbox WHERE user_id = $1::uuid"
            " AND template = 'set_password_link'",
            user_id,
        )
        assert 1 <= sent <= RESEND_PER_ACCOUNT_PER_HOUR
        assert len(stack.mail.to(address)) == 1 + sent
        limited = await stack.api.post(RESEND, json={"email": address})
        assert limited.status_code == 429 and limited.headers["retry-after"]
        assert limited.json()["error"]["code"] == "rate_limited"


async def _answer(api: httpx.AsyncClient, **fields: str) -> tuple[int, str, bytes]:
    response = await api.post(RESEND, json=fields)
    return response.status_code, response.headers["content-type"], response.content


async def _page(api: httpx.AsyncClient, **fields: str) -> tuple[int, bytes]:
    response = await api.post(RESEND, data=fields, headers=HTML)
    return response.status_code, response.content


async def test_an_unknown_address_gets_the_same_answer(checkout_stack: OpenStack) -> None:
    async with checkout_stack() as stack:
        user_id, address, first = await paid_user(stack)
        unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
        known = await _answer(stack.api, email=address)
        assert known[0] == 202 and known[2] == b'{"status":"accepted"}'
        assert await _answer(stack.api, email=unknown) == known
        assert await _answer(stack.api, token="n" * 43) == known
        assert await _answer(stack.api, view="not.a-view-token") == known
        # The status page's view token names the same account: the same answer again.
        view = issue_view_token(
            TOKEN_SECRET, user_id=user_id, session_id="cs_test", now=time.time(),
            ttl_seconds=600,
        )  # fmt: skip
        assert await _answer(stack.api, view=view) == known
        # A browser gets the same page either way.
        assert await _page(stack.api, email=unknown) == await _page(stack.api, email=address)
        await mail_to(stack, address, 2)
        assert stack.mail.to(unknown) == []
        # The known address got its link (one run: the page's request joined it or was
        # the second of the hour).
        assert token_of(link_in(stack.mail.to(address)[-1])) != token_of(first)
