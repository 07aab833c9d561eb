"""Every `/v1/...` request is checked against stripe-python's generated parameter types,
and the sandbox, onramp and the installed library speak one API version."""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from typing_extensions import is_typeddict

import sandbox
from onramp.stripe_client import STRIPE_API_VERSION, build_stripe_client
from sandbox.domain.validation import PARAMS, REQUEST_OPTIONS, hash_of, params_class, path_shape
from sandbox.http.v1_routes import ROUTER
from tests.sandbox.helpers import API_KEY, make_customer, make_price, raw


def _refused(call: typing.Callable[[], object]) -> dict[str, Any]:
    """The error body of a call that Stripe (here the sandbox) answers with a 400."""
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        call()
    assert excinfo.value.http_status == 400
    body = excinfo.value.json_body
    assert isinstance(body, dict)
    error: dict[str, Any] = body["error"]
    assert error["type"] == "invalid_request_error"
    return error


def _session_params(price: stripe.Price, **extra: Any) -> Any:
    return raw(
        {
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "https://app.example/done",
            "cancel_url": "https://app.example/cancel",
            **extra,
        }
    )


def test_every_route_declares_its_stripe_params_class() -> None:
    undeclared = [
        f"{route.method} {route.template}"
        for route in ROUTER.routes
        if params_class(route.method, route.template) is None
    ]
    assert undeclared == [], "add these routes to sandbox.domain.validation.PARAMS"
    for cls in PARAMS.values():
        assert is_typeddict(cls)
        assert cls.__module__.startswith("stripe.params")
        assert not hash_of(cls).fields.keys() & REQUEST_OPTIONS


def test_unknown_top_level_parameter(client: stripe.StripeClient) -> None:
    error = _refused(
        lambda: client.v1.customers.create(params=raw({"email": "a@example.com", "colour": "x"}))
    )
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "colour"
    assert error["message"] == "Received unknown parameter: colour"


def test_unknown_nested_parameter(client: stripe.StripeClient) -> None:
    error = _refused(
        lambda: client.v1.customers.create(
            params=raw({"address": {"city": "Paris", "planet": "Earth"}})
        )
    )
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "address[planet]"

    price = make_price(client)
    error = _refused(
        lambda: client.v1.checkout.sessions.create(
            params=_session_params(price, line_items=[{"price": price.id, "qty": 1}])
        )
    )
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "line_items[0][qty]"


def test_removed_endive_parameters(client: stripe.StripeClient) -> None:
    price = make_price(client)
    error = _refused(
        lambda: client.v1.checkout.sessions.create(
            params=_session_params(price, payment_method_types=["card"])
        )
    )
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "payment_method_types"

    session = client.v1.checkout.sessions.create(
        params=_session_params(price, allowed_payment_method_types=["card"])
    )
    assert session.payment_method_types == ["card"]

    customer = make_customer(client)
    items = [{"price": price.id}]
    error = _refused(
        lambda: client.v1.subscriptions.create(
            params=raw({"customer": customer.id, "items": items, "billing_cycle_anchor": "now"})
        )
    )
    assert error["code"] == "parameter_invalid_integer"
    assert error["param"] == "billing_cycle_anchor"
    assert error["message"] == "Invalid integer: now"

    # An integer passes Stripe's types; the sandbox says it does not model the anchor.
    error = _refused(
        lambda: client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": price.id}],
                "billing_cycle_anchor": 1_900_000_000,
            }
        )
    )
    assert error["code"] == "parameter_unknown"
    assert error["param"] == "billing_cycle_anchor"
    assert "sandbox does not model it" in error["message"]


def test_bad_enum_value(client: stripe.StripeClient) -> None:
    price = make_price(client)
    error = _refused(
        lambda: client.v1.checkout.sessions.create(params=_session_params(price, mode="gift"))
    )
    assert error["param"] == "mode"
    assert error["message"] == "Invalid mode: must be one of payment, setup, or subscription"
    assert "code" not in error

    error = _refused(
        lambda: client.v1.accounts.create(
            params=raw({"controller": {"stripe_dashboard": {"type": "partial"}}})
        )
    )
    assert error["param"] == "controller[stripe_dashboard][type]"
    assert error["message"] == "Invalid type: must be one of express, full, or none"


def test_missing_empty_and_malformed_values(client: stripe.StripeClient) -> None:
    error = _refused(
        lambda: client.v1.account_links.create(
            params=raw({"account": "acct_x", "refresh_url": "https://a.example/r"})
        )
    )
    assert error["code"] == "parameter_missing"
    assert error["param"] == "type"
    assert error["message"] == "Missing required param: type."

    error = _refused(lambda: client.v1.customers.create(params=raw({"email": ""})))
    assert error["code"] == "parameter_invalid_empty"
    assert error["param"] == "email"

    error = _refused(lambda: client.v1.customers.list(params=raw({"limit": "ten"})))
    assert error["code"] == "parameter_invalid_integer"
    assert error["param"] == "limit"

    customer = client.v1.customers.create(params=raw({"address": ""}))
    assert customer.id.startswith("cus_")


def test_a_refused_request_is_not_saved_under_its_idempotency_key(
    client: stripe.StripeClient,
) -> None:
    options: Any = {"idempotency_key": "validation-then-fixed"}
    _refused(lambda: client.v1.customers.create(params=raw({"colour": "x"}), options=options))
    customer = client.v1.customers.create(params={"email": "a@example.com"}, options=options)
    assert customer.email == "a@example.com"


def test_new_subscriptions_use_flexible_billing_mode(client: stripe.StripeClient) -> None:
    price = make_price(client)
    customer = make_customer(client)
    subscription = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    assert subscription.billing_mode.type == "flexible"
    assert subscription.billing_mode.updated_at == subscription.created


def test_one_api_version(sandbox_url: str) -> None:
    assert sandbox.API_VERSION == STRIPE_API_VERSION == stripe.api_version

    client = build_stripe_client(API_KEY, sandbox_url, max_network_retries=0)
    assert client.v1.customers.list().data == []

    answer = httpx.get(
        f"{sandbox_url}/v1/customers",
        headers={"Authorization": f"Bearer {API_KEY}", "Stripe-Version": "2025-10-29.clover"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert sandbox.API_VERSION in answer.json()["error"]["message"]


def _library_endpoints() -> dict[tuple[str, str], str]:
    """(method, path with `{}` placeholders) -> the params class name that stripe-python's
    async service method for that endpoint takes, read from the library's own source."""
    endpoint = re.compile(
        r"async def \w+\(\s*self,(?P<args>.*?)\) -> .*?_request_async\(\s*"
        r'"(?P<method>\w+)",\s*"(?P<path>/v1/[^"]*)"',
        re.S,
    )
    found: dict[tuple[str, str], str] = {}
    for source in Path(stripe.__file__).parent.rglob("_*_service.py"):
        for match in endpoint.finditer(source.read_text()):
            declared = re.search(r'params: (?:Optional\[)?"(\w+)"', match["args"])
            if declared:
                found[(match["method"].upper(), path_shape(match["path"]))] = declared.group(1)
    return found


def test_each_route_uses_the_class_the_library_sends_it() -> None:
    library = _library_endpoints()
    declared = {
        (method, path_shape(template)): cls.__name__ for (method, template), cls in PARAMS.items()
    }
    assert len(declared) == len(PARAMS)
    mismatched = {
        key: (name, library.get(key)) for key, name in declared.items() if library.get(key) != name
    }
    assert mismatched == {}
