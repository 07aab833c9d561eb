"""Customers through the official client, plus Stripe's error envelope and headers."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY, raw


def test_create_retrieve_update(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        params={"email": "ada@example.com", "name": "Ada", "metadata": {"user_id": "u1"}}
    )
    assert created.id.startswith("cus_")
    assert created.object == "customer"
    assert created.livemode is False
    assert created["metadata"].to_dict() == {"user_id": "u1"}
    assert created["invoice_settings"]["default_payment_method"] is None

    fetched = client.v1.customers.retrieve(created.id)
    assert fetched.email == "ada@example.com"
    assert fetched.created == created.created

    updated = client.v1.customers.update(
        created.id, params={"name": "Ada L.", "metadata": {"user_id": "", "plan": "pro"}}
    )
    assert updated.name == "Ada L."
    assert updated["metadata"].to_dict() == {"plan": "pro"}


def test_delete_then_retrieve_returns_the_deleted_stub(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "gone@example.com"})
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    assert deleted.id == customer.id

    again = client.v1.customers.retrieve(customer.id)
    assert again.to_dict() == {"id": customer.id, "object": "customer", "deleted": True}
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.update(customer.id, params={"name": "x"})
    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"


def test_list_filters_by_email_and_paginates(client: stripe.StripeClient) -> None:
    ids = [client.v1.customers.create(params={"email": f"p{i}@example.com"}).id for i in range(5)]
    client.v1.customers.create(params={"email": "other@example.com"})

    page = client.v1.customers.list(params={"email": "p3@example.com"})
    assert [c.id for c in page.data] == [ids[3]]

    first = client.v1.customers.list(params={"limit": 2})
    assert first.has_more is True
    assert first.url == "/v1/customers"
    everything = [c.id for c in first.auto_paging_iter()]
    assert everything[1:] == list(reversed(ids))  # newest first, all pages


async def test_async_client_creates_and_retrieves(client: stripe.StripeClient) -> None:
    created = await client.v1.customers.create_async(params={"email": "async@example.com"})
    fetched = await client.v1.customers.retrieve_async(created.id)
    assert fetched.email == "async@example.com"


def test_unknown_parameter_is_a_400_with_param(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.create(params=raw({"emial": "typo@example.com"}))
    assert excinfo.value.http_status == 400
    assert excinfo.value.param == "emial"
    assert "Received unknown parameter: emial" in str(excinfo.value.user_message)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.create(params=raw({"invoice_settings": {"nonsense": "1"}}))
    assert excinfo.value.param == "invoice_settings[nonsense]"


def test_bad_enum_and_bad_email(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.create(params=raw({"tax_exempt": "sometimes"}))
    assert excinfo.value.param == "tax_exempt"
    assert "must be one of exempt, none, or reverse" in str(excinfo.value.user_message)

    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.create(params={"email": "not-an-email"})
    assert excinfo.value.param == "email"
    assert excinfo.value.code == "email_invalid"


def test_missing_or_bad_key_is_401(sandbox_url: str) -> None:
    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": sandbox_url})
    with pytest.raises(stripe.AuthenticationError) as excinfo:
        bad.v1.customers.list()
    assert excinfo.value.http_status == 401

    response = httpx.get(f"{sandbox_url}/v1/customers")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in response.json()["error"]["message"]


def test_every_response_has_a_request_id(api: httpx.Client, sandbox_url: str) -> None:
    ok = api.post("/v1/customers", data={"email": "h@example.com"})
    missing = api.get("/v1/customers/cus_missing")
    unknown = api.get("/v1/nothing_here")
    unauthenticated = httpx.get(f"{sandbox_url}/v1/customers")
    for response in (ok, missing, unknown, unauthenticated):
        assert response.headers["Request-Id"].startswith("req_")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "message": "No such customer: 'cus_missing'",
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "param": "id",
        "request_log_url": missing.json()["error"]["request_log_url"],
    }
    assert unknown.status_code == 404
    assert "Unrecognized request URL (GET: /v1/nothing_here)" in unknown.json()["error"]["message"]


def test_nested_form_encoding_round_trips(api: httpx.Client) -> None:
    response = api.post(
        "/v1/customers",
        data={
            "metadata[a]": "1",
            "metadata[0]": "zero",
            "address[line1]": "1 Main St",
            "preferred_locales[]": ["en", "fr"],
            "expand[]": "invoice_settings.default_payment_method",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metadata"] == {"a": "1", "0": "zero"}
    assert body["address"]["line1"] == "1 Main St"
    assert body["preferred_locales"] == ["en", "fr"]
    listed = api.get("/v1/customers", params={"limit": "1", "expand[]": "data.invoice_settings"})
    assert listed.status_code == 200
    assert listed.json()["data"][0]["id"] == body["id"]
    assert API_KEY.startswith("sk_test_")
