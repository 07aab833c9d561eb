"""Connect: Express accounts, account links and the onboarding page, Connect events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
import stripe

if TYPE_CHECKING:
    from stripe.params import AccountCreateParams

from tests.sandbox.helpers import CONNECT_SECRET, PLATFORM_SECRET, Receiver, advance, wait_for


def _account(client: stripe.StripeClient) -> stripe.Account:
    return client.v1.accounts.create(
        params={
            "type": "express",
            "country": "US",
            "email": "seller@example.com",
            "metadata": {"user_id": "s1"},
            "capabilities": {
                "card_payments": {"requested": True},
                "transfers": {"requested": True},
            },
        }
    )


def test_express_account_starts_restricted(client: stripe.StripeClient) -> None:
    account = _account(client)
    assert account.id.startswith("acct_") and account.type == "express"
    assert (account.details_submitted, account.charges_enabled, account.payouts_enabled) == (
        False,
        False,
        False,
    )
    assert account.requirements is not None
    assert "tos_acceptance.date" in (account.requirements.currently_due or [])
    assert account.requirements.disabled_reason == "requirements.past_due"
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}
    assert client.v1.accounts.retrieve(account.id).email == "seller@example.com"
    assert [a.id for a in client.v1.accounts.list().data] == [account.id]


EXPRESS_CONTROLLER: dict[str, Any] = {
    "stripe_dashboard": {"type": "express"},
    "fees": {"payer": "application"},
    "losses": {"payments": "application"},
    "requirement_collection": "stripe",
}


def _create(client: stripe.StripeClient, params: dict[str, Any]) -> stripe.Account:
    """An account create with parameters built as a plain dict (some on purpose wrong)."""
    return client.v1.accounts.create(params=cast("AccountCreateParams", params))


def _controller_account(client: stripe.StripeClient, *capabilities: str) -> stripe.Account:
    return _create(
        client,
        {
            "controller": EXPRESS_CONTROLLER,
            "capabilities": {name: {"requested": True} for name in capabilities},
            "email": "seller@example.com",
        },
    )


def test_controller_accounts_and_delete(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(
        params={
            "controller": {
                "stripe_dashboard": {"type": "express"},
                "fees": {"payer": "application"},
            }
        }
    )
    assert account.type == "express"
    assert account.controller is not None and account.controller.fees is not None
    assert account.controller.fees.payer == "application"
    # Without capabilities, the two Stripe requests when Stripe collects requirements.
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}
    deleted = client.v1.accounts.delete(account.id)
    assert deleted.deleted is True
    # A deleted account is out of the key's reach: 403 account_invalid, as at Stripe,
    # for a read and for a second delete alike.
    for call in (client.v1.accounts.retrieve, client.v1.accounts.delete):
        with pytest.raises(stripe.PermissionError) as excinfo:
            call(account.id)
        assert excinfo.value.http_status == 403
        # `stripe` leaves a 403's code in the error body, not on the exception.
        assert excinfo.value.error is not None
        assert excinfo.value.error.code == "account_invalid"
    with pytest.raises(stripe.PermissionError) as foreign:
        client.v1.accounts.retrieve("acct_1NeverOnThisPlatform")
    assert foreign.value.error is not None
    assert foreign.value.error.code == "account_invalid"


def test_type_and_controller_together_are_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        _create(client, {"type": "express", "controller": EXPRESS_CONTROLLER})
    assert (excinfo.value.http_status, excinfo.value.param) == (400, "type")
    assert client.v1.accounts.list().data == []


def test_capabilities_are_validated(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        _create(client, {"capabilities": {"teleport_payments": {"requested": True}}})
    assert unknown.value.param == "capabilities[teleport_payments]"
    # The platform collects requirements: capabilities are required.
    with pytest.raises(stripe.InvalidRequestError) as missing:
        _create(
            client,
            {
                "controller": {
                    **EXPRESS_CONTROLLER,
                    "requirement_collection": "application",
                    "stripe_dashboard": {"type": "none"},
                }
            },
        )
    assert missing.value.param == "capabilities"


def test_transfers_only_account_gets_payouts_without_charges(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    account = _controller_account(client, "transfers")
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"transfers": "inactive"}

    assert ctl.post(f"/accounts/{account.id}/complete_onboarding").status_code == 200

    done = client.v1.accounts.retrieve(account.id)
    assert done.details_submitted is True
    assert (done.charges_enabled, done.payouts_enabled) == (False, True)
    assert done.capabilities is not None
    assert done.capabilities.to_dict() == {"transfers": "active"}


def test_capabilities_under_review_leave_the_flags_off(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    account = _controller_account(client, "card_payments", "transfers")
    pending = ctl.post(
        f"/accounts/{account.id}/complete_onboarding", json={"capability_status": "pending"}
    )
    assert pending.status_code == 200
    read = client.v1.accounts.retrieve(account.id)
    assert read.details_submitted is True
    assert (read.charges_enabled, read.payouts_enabled) == (False, False)
    assert read.capabilities is not None
    assert read.capabilities.to_dict() == {"card_payments": "pending", "transfers": "pending"}

    ctl.post(f"/accounts/{account.id}/complete_onboarding")
    active = client.v1.accounts.retrieve(account.id)
    assert (active.charges_enabled, active.payouts_enabled) == (True, True)
    # Either of card_payments/transfers inactive disables both (Stripe's rule).
    ctl.post(f"/accounts/{account.id}/update", json={"capabilities": {"transfers": "inactive"}})
    later = client.v1.accounts.retrieve(account.id)
    assert (later.charges_enabled, later.payouts_enabled) == (False, False)
    assert later.capabilities is not None
    assert later.capabilities.to_dict() == {"card_payments": "inactive", "transfers": "inactive"}


def test_onboarding_link_is_single_use(
    client: stripe.StripeClient, receiver: Receiver, sandbox_url: str
) -> None:
    account = _account(client)
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": f"{receiver.url}/refresh",
            "return_url": f"{receiver.url}/return",
        }
    )
    assert link.object == "account_link"
    assert link.expires_at == link.created + 300
    assert link.url.startswith(f"{sandbox_url}/_sandbox/pages/connect/")

    with httpx.Client() as browser:
        page = browser.get(link.url)
        assert page.status_code == 200 and 'id="complete"' in page.text
        # A second visit is refused: Stripe sends the user to refresh_url.
        again = browser.get(link.url)
        assert again.status_code == 303
        assert again.headers["location"] == f"{receiver.url}/refresh"
        done = browser.post(f"{link.url}/complete")
        assert done.status_code == 303
        assert done.headers["location"] == f"{receiver.url}/return"
        assert browser.post(f"{link.url}/complete").status_code == 410

    onboarded = client.v1.accounts.retrieve(account.id)
    assert (onboarded.details_submitted, onboarded.charges_enabled, onboarded.payouts_enabled) == (
        True,
        True,
        True,
    )
    assert onboarded.requirements is not None
    assert onboarded.requirements.currently_due == []

    event = receiver.wait_for_event("account.updated", account.id, path="/connect")
    assert event["account"] == account.id
    assert event["data"]["previous_attributes"]["charges_enabled"] is False
    delivery = next(d for d in receiver.deliveries("/connect") if d.event["id"] == event["id"])
    verified = stripe.Webhook.construct_event(
        delivery.body, delivery.headers["Stripe-Signature"], CONNECT_SECRET
    )
    assert verified.id == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(
            delivery.body, delivery.headers["Stripe-Signature"], PLATFORM_SECRET
        )
    assert all(e["type"] != "account.updated" for e in receiver.events("/platform"))


def test_links_expire_with_the_clock(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    account = _account(client)
    link = client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": f"{receiver.url}/refresh",
            "return_url": f"{receiver.url}/return",
        }
    )
    advance(ctl, 301)
    expired = httpx.get(link.url)
    assert expired.status_code == 303
    assert expired.headers["location"] == f"{receiver.url}/refresh"

    bare = client.v1.account_links.create(
        params={"account": account.id, "type": "account_onboarding"}
    )
    advance(ctl, 301)
    page = httpx.get(bare.url)
    assert page.status_code == 410 and "expired or was already used" in page.text


def test_control_onboarding_and_later_changes(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    account = _account(client)
    assert ctl.post(f"/accounts/{account.id}/complete_onboarding").status_code == 200
    assert client.v1.accounts.retrieve(account.id).charges_enabled is True
    changed = ctl.post(
        f"/accounts/{account.id}/update",
        json={
            "charges_enabled": False,
            "requirements": {
                "currently_due": ["individual.verification.document"],
                "disabled_reason": "requirements.past_due",
            },
        },
    )
    assert changed.status_code == 200
    later = client.v1.accounts.retrieve(account.id)
    assert later.charges_enabled is False
    assert later.requirements is not None
    assert later.requirements.currently_due == ["individual.verification.document"]

    def both() -> list[dict[str, Any]] | None:
        found = [
            e
            for e in receiver.events("/connect")
            if e["type"] == "account.updated" and e["account"] == account.id
        ]
        return found if len(found) == 2 else None

    events = wait_for(both, what="two account.updated events")
    assert events[1]["data"]["object"]["charges_enabled"] is False


def test_account_link_validation(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.account_links.create(
            params={"account": "acct_missing", "type": "account_onboarding"}
        )
    assert (excinfo.value.http_status, excinfo.value.param) == (404, "account")
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.account_links.create(params={"account": "acct_x", "type": "wrong"})
    assert excinfo.value.param == "type"


def test_update_account_through_the_api(client: stripe.StripeClient, receiver: Receiver) -> None:
    account = _account(client)
    updated = client.v1.accounts.update(account.id, params={"metadata": {"tier": "gold"}})
    assert updated["metadata"].to_dict() == {"user_id": "s1", "tier": "gold"}
    event = receiver.wait_for_event("account.updated", account.id, path="/connect")
    assert event["data"]["previous_attributes"]["metadata"] == {"user_id": "s1"}
