"""The sandbox's planting calls: objects made, changed and deleted with no event, as the
dashboard would with every webhook lost; bad bodies refused with Stripe's error shape."""

from __future__ import annotations

import httpx
import pytest

from devstack.stripe_catalog import ensure_catalog
from onramp.stripe_client import build_stripe_client
from tests.support.harness import STRIPE_TEST_KEY
from tests.support.sandbox_process import sandbox_process_async

pytestmark = pytest.mark.slow


async def test_planted_objects_make_no_event() -> None:
    async with sandbox_process_async() as url, httpx.AsyncClient(base_url=url) as control:
        client = build_stripe_client(STRIPE_TEST_KEY, url, max_network_retries=0)
        prices = await ensure_catalog(client)
        pro = prices["STRIPE_PRICE_PRO_MONTHLY"]
        events_before = len((await control.get("/_sandbox/events")).json()["data"])
        now = (await control.get("/_sandbox/clock")).json()["now"]
        planted = await control.post(
            "/_sandbox/plant/customers",
            json={"customers": [{"metadata": {"user_id": "u1"}, "created": now - 60}, {}]},
        )
        assert planted.status_code == 200, planted.text
        first, second = planted.json()["ids"]
        customer = await client.v1.customers.retrieve_async(first)
        assert customer.metadata is not None and customer.metadata["user_id"] == "u1"
        assert customer.created == now - 60
        (sub_id,) = (
            await control.post(
                "/_sandbox/plant/subscriptions",
                json={"subscriptions": [{"customer": first, "price": pro}]},
            )
        ).json()["ids"]
        (account_id,) = (
            await control.post("/_sandbox/plant/accounts", json={"accounts": [{}]})
        ).json()["ids"]
        assert (await client.v1.accounts.retrieve_async(account_id)).id == account_id
        changed = await control.post(
            f"/_sandbox/plant/subscriptions/{sub_id}",
            json={"status": "past_due", "price": prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]},
        )
        assert changed.status_code == 200
        sub = await client.v1.subscriptions.retrieve_async(sub_id)
        assert sub.status == "past_due"
        assert sub["items"].data[0].price.id == prices["STRIPE_PRICE_ENTERPRISE_MONTHLY"]
        assert (await control.post(f"/_sandbox/plant/objects/{second}/delete")).status_code == 200
        assert (await client.v1.customers.retrieve_async(second)).to_dict().get("deleted")
        listed = await client.v1.customers.list_async({"limit": 100})
        assert [c.id for c in listed.data] == [first]
        events_after = len((await control.get("/_sandbox/events")).json()["data"])
        assert events_after == events_before

        for path, body in (
            ("/_sandbox/plant/customers", {"customers": []}),
            ("/_sandbox/plant/customers", {"customers": [{"metadata": {"a": 1}}]}),
            ("/_sandbox/plant/customers", {"customers": [{"created": now + 3600}]}),
            ("/_sandbox/plant/subscriptions", {"subscriptions": [{"customer": "cus_nope"}]}),
            (f"/_sandbox/plant/subscriptions/{sub_id}", {"status": "sleeping"}),
        ):
            refused = await control.post(path, json=body)
            assert refused.status_code in (400, 404), (path, refused.text)
            assert refused.json()["error"]["type"] == "invalid_request_error"
        missing = await control.post("/_sandbox/plant/objects/cus_nope0001/delete")
        assert missing.status_code == 404
