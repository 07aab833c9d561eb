"""Test clocks per customer: a customer's objects live on its clock's time, advancing a
clock runs only its customers' work, and Stripe's limits on advancing are enforced."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import advance, make_customer, make_price, sandbox_events

DAY = 86_400
START = 1_893_456_000  # 2030-01-01: far from the global clock, so mixing them up shows


def _clock(client: stripe.StripeClient, frozen_time: int = START) -> stripe.test_helpers.TestClock:
    return client.v1.test_helpers.test_clocks.create(
        params={"frozen_time": frozen_time, "name": "rehearsal"}
    )


def _customer_on(
    client: stripe.StripeClient, clock_id: str, card: str = "pm_card_visa"
) -> stripe.Customer:
    customer = client.v1.customers.create(
        params={"email": "clocked@example.com", "test_clock": clock_id}
    )
    pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
    return client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )


def _ready(client: stripe.StripeClient, clock_id: str) -> stripe.test_helpers.TestClock:
    clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
    assert clock.status == "ready"
    return clock


def test_create_retrieve_list_delete(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    clock = _clock(client)
    assert clock.id.startswith("clock_") and clock.object == "test_helpers.test_clock"
    assert (clock.frozen_time, clock.status, clock.name) == (START, "ready", "rehearsal")
    assert clock.deletes_after - clock.created == 30 * DAY
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).id == clock.id
    listed = client.v1.test_helpers.test_clocks.list()
    assert [c.id for c in listed.data] == [clock.id]

    customer = _customer_on(client, clock.id)
    assert customer.test_clock == clock.id and customer.created == START
    on_clock = client.v1.customers.list(params={"test_clock": clock.id})
    assert [c.id for c in on_clock.data] == [customer.id]

    deleted = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert deleted.deleted is True
    # Deleting a clock deletes its customers, as at Stripe.
    assert client.v1.customers.retrieve(customer.id).to_dict().get("deleted") is True
    types = [e["type"] for e in sandbox_events(ctl) if e["type"].startswith("test_helpers.")]
    assert types == ["test_helpers.test_clock.created", "test_helpers.test_clock.deleted"]


def test_subscription_renews_on_its_clock_only(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    clock = _clock(client)
    clocked = _customer_on(client, clock.id)
    price = make_price(client, 1500)
    sub = client.v1.subscriptions.create(
        params={"customer": clocked.id, "items": [{"price": price.id}]}
    )
    assert sub.test_clock == clock.id and sub.status == "active"
    item = sub["items"].data[0]
    assert item.current_period_start == START
    first_end = item.current_period_end

    # The global clock leaves the clocked subscription alone, and vice versa.
    plain = make_customer(client)
    plain_sub = client.v1.subscriptions.create(
        params={"customer": plain.id, "items": [{"price": price.id}]}
    )
    advance(ctl, 40 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].current_period_start == START
    renewed_plain = client.v1.subscriptions.retrieve(plain_sub.id)["items"].data[0]
    assert renewed_plain.current_period_start > plain_sub["items"].data[0].current_period_start

    answer = client.v1.test_helpers.test_clocks.advance(
        clock.id, params={"frozen_time": first_end + DAY}
    )
    # Stripe answers while the clock is still advancing; it is `ready` when the work is done.
    assert answer.status == "advancing"
    assert answer.status_details.advancing is not None
    assert answer.status_details.advancing.target_frozen_time == first_end + DAY
    assert _ready(client, clock.id).frozen_time == first_end + DAY

    renewed = client.v1.subscriptions.retrieve(sub.id)["items"].data[0]
    assert renewed.current_period_start == first_end
    invoices = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert [i.billing_reason for i in invoices] == ["subscription_cycle", "subscription_create"]
    assert invoices[0].created == first_end and invoices[0].test_clock == clock.id
    assert invoices[0].status == "paid"
    # The plain subscription did not move with the test clock.
    assert client.v1.subscriptions.retrieve(plain_sub.id)["items"].data[0] == renewed_plain
    types = [e["type"] for e in sandbox_events(ctl) if e["type"].startswith("test_helpers.")]
    assert types[-2:] == ["test_helpers.test_clock.advancing", "test_helpers.test_clock.ready"]


def test_dunning_retries_follow_the_clock(client: stripe.StripeClient) -> None:
    clock = _clock(client)
    customer = _customer_on(client, clock.id)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": make_price(client).id}]}
    )
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", params={"customer": customer.id}
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    end = sub["items"].data[0].current_period_end
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 1})
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    [renewal, _] = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert renewal.attempt_count == 1 and renewal.next_payment_attempt is not None
    assert renewal.next_payment_attempt > end

    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": end + 9 * DAY})
    assert client.v1.invoices.retrieve(renewal.id).attempt_count == 4
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"


def test_incomplete_expires_on_the_clock(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    clock = _clock(client)
    customer = _customer_on(client, clock.id, card="pm_card_chargeDeclined")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": make_price(client).id}]}
    )
    assert sub.status == "incomplete" and sub.created == START
    advance(ctl, 2 * DAY)  # the global clock: not this subscription's time
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    client.v1.test_helpers.test_clocks.advance(clock.id, params={"frozen_time": START + DAY})
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"


def test_advance_limits(client: stripe.StripeClient) -> None:
    clock = _clock(client)
    clocks = client.v1.test_helpers.test_clocks

    with pytest.raises(stripe.InvalidRequestError) as backwards:
        clocks.advance(clock.id, params={"frozen_time": START})
    assert backwards.value.param == "frozen_time" and backwards.value.http_status == 400

    # Without subscriptions a clock may move at most two years.
    with pytest.raises(stripe.InvalidRequestError) as too_far:
        clocks.advance(clock.id, params={"frozen_time": START + 3 * 365 * DAY})
    assert too_far.value.param == "frozen_time"

    customer = _customer_on(client, clock.id)
    client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": make_price(client, 100, "week").id}]}
    )
    # A weekly subscription: two weeks at most.
    with pytest.raises(stripe.InvalidRequestError):
        clocks.advance(clock.id, params={"frozen_time": START + 15 * DAY})
    clocks.advance(clock.id, params={"frozen_time": START + 14 * DAY})
    assert _ready(client, clock.id).frozen_time == START + 14 * DAY

    with pytest.raises(stripe.InvalidRequestError) as missing:
        clocks.create(params={"name": "no time"})  # type: ignore[typeddict-item]
    assert missing.value.param == "frozen_time"


def test_a_clock_holds_at_most_three_customers(client: stripe.StripeClient) -> None:
    clock = _clock(client)
    for _ in range(3):
        client.v1.customers.create(params={"test_clock": clock.id})
    with pytest.raises(stripe.InvalidRequestError) as full:
        client.v1.customers.create(params={"test_clock": clock.id})
    assert full.value.param == "test_clock"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.customers.create(params={"test_clock": "clock_missing"})
    assert unknown.value.code == "resource_missing"


def test_lists_filter_by_test_clock(client: stripe.StripeClient) -> None:
    clock = _clock(client)
    clocked = _customer_on(client, clock.id)
    plain = make_customer(client)
    price = make_price(client)
    on_clock = client.v1.subscriptions.create(
        params={"customer": clocked.id, "items": [{"price": price.id}]}
    )
    client.v1.subscriptions.create(params={"customer": plain.id, "items": [{"price": price.id}]})
    listed = client.v1.subscriptions.list(params={"test_clock": clock.id})
    assert [s.id for s in listed.data] == [on_clock.id]
    customers = client.v1.customers.list(params={"test_clock": clock.id})
    assert [c.id for c in customers.data] == [clocked.id]
