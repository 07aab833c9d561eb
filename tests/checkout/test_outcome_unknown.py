"""The checkout's Stripe writes after a saved 500 (outcome unknown).

Once an endpoint began executing, Stripe saves its answer for the idempotency key, a
500 included, and replays it for 24 h: that key never answers anything else. The
activities then look for what the first attempt did before writing again under a new
key. The sandbox does not save injected 500s, so a transport in front of it plays
Stripe's part: it lets the first write reach the sandbox (or not) and from then on
answers every request under that key with the replayed 500.
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import stripe
from temporalio.testing import ActivityEnvironment

from activities.stripe_checkout import StripeCheckoutActivities
from onramp.stripe_client import build_stripe_client
from tests.support.harness import STRIPE_TEST_KEY
from workflows.contracts.checkout import CreateCheckoutSessionInput, ExpireCheckoutSessionInput

SAVED_500 = {
    "error": {"type": "api_error", "message": "An unknown error occurred, please try again."}
}


class SavedServerError(httpx.AsyncBaseTransport):
    """Answers the first POST to `path` with a replayed 500 (after passing it on when
    `took_effect`), and every later request under that key the same way."""

    def __init__(self, path: str, *, took_effect: bool) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path = re.compile(path)
        self.took_effect = took_effect
        self.saved: set[str] = set()
        self.keys: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key is not None and self.path.search(request.url.path):
            self.keys.append(key)
            if not self.saved:
                self.saved.add(key)
                if self.took_effect:
                    response = await self.inner.handle_async_request(request)
                    await response.aread()
            if key in self.saved:
                return httpx.Response(
                    500,
                    headers={"Idempotent-Replayed": "true", "Content-Type": "application/json"},
                    content=json.dumps(SAVED_500).encode(),
                )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def client_through(sandbox_url: str, transport: SavedServerError) -> stripe.StripeClient:
    client = build_stripe_client(STRIPE_TEST_KEY, sandbox_url, max_network_retries=0)
    http = client._requestor._client  # the library's HTTPXClient
    assert isinstance(http, stripe.HTTPXClient)
    http._client_async = httpx.AsyncClient(transport=transport, timeout=30)
    return client


def sandbox(sandbox_url: str) -> stripe.StripeClient:
    return build_stripe_client(STRIPE_TEST_KEY, sandbox_url)


async def new_customer(client: stripe.StripeClient) -> str:
    customer = await client.v1.customers.create_async(
        {"email": f"unknown-{uuid.uuid4().hex[:8]}@example.com"}
    )
    return customer.id


def create_input(customer_id: str, price_id: str) -> CreateCheckoutSessionInput:
    user_id = str(uuid.uuid4())
    workflow_id = f"checkout-{user_id}"
    return CreateCheckoutSessionInput(
        user_id=user_id,
        workflow_id=workflow_id,
        customer_id=customer_id,
        price_id=price_id,
        success_url="https://platform.example/back",
        cancel_url="https://platform.example/",
        idempotency_key=f"{workflow_id}/{uuid.uuid4()}/create_session",
    )


async def test_create_that_took_effect_is_found_not_repeated(
    sandbox_url: str, catalog: dict[str, str]
) -> None:
    plain = sandbox(sandbox_url)
    customer_id = await new_customer(plain)
    transport = SavedServerError(r"^/v1/checkout/sessions$", took_effect=True)
    activities = StripeCheckoutActivities(client_through(sandbox_url, transport))
    request = create_input(customer_id, catalog["STRIPE_PRICE_PRO_MONTHLY"])

    created = await ActivityEnvironment().run(activities.create_checkout_session, request)

    sessions = await plain.v1.checkout.sessions.list_async({"customer": customer_id})
    assert [s.id for s in sessions.data] == [created.session_id]
    metadata = sessions.data[0].metadata
    assert metadata is not None and metadata.to_dict()["operation"] == request.idempotency_key
    # Found by its metadata: no second write under a new key.
    assert transport.keys == [request.idempotency_key]


async def test_create_that_did_not_take_effect_is_made_under_a_new_key(
    sandbox_url: str, catalog: dict[str, str]
) -> None:
    plain = sandbox(sandbox_url)
    customer_id = await new_customer(plain)
    transport = SavedServerError(r"^/v1/checkout/sessions$", took_effect=False)
    activities = StripeCheckoutActivities(client_through(sandbox_url, transport))
    request = create_input(customer_id, catalog["STRIPE_PRICE_PRO_MONTHLY"])

    created = await ActivityEnvironment().run(activities.create_checkout_session, request)

    sessions = await plain.v1.checkout.sessions.list_async({"customer": customer_id})
    assert [s.id for s in sessions.data] == [created.session_id]
    assert transport.keys == [
        request.idempotency_key,
        f"{request.idempotency_key}/after-unknown-1",
    ]


async def test_expire_that_took_effect_counts_as_done(
    sandbox_url: str, catalog: dict[str, str]
) -> None:
    plain = sandbox(sandbox_url)
    customer_id = await new_customer(plain)
    request = create_input(customer_id, catalog["STRIPE_PRICE_PRO_MONTHLY"])
    session = await StripeCheckoutActivities(plain).create_checkout_session(request)
    transport = SavedServerError(r"/expire$", took_effect=True)
    activities = StripeCheckoutActivities(client_through(sandbox_url, transport))
    key = f"{request.workflow_id}/{uuid.uuid4()}/expire_session"

    expired = await ActivityEnvironment().run(
        activities.expire_checkout_session,
        ExpireCheckoutSessionInput(session_id=session.session_id, idempotency_key=key),
    )

    assert expired.status == "expired"
    assert (await plain.v1.checkout.sessions.retrieve_async(session.session_id)).status == (
        "expired"
    )
    assert transport.keys == [key]
