"""The rows of `onramp stripe check`, in order; each needs what earlier rows made.

Each row runs onramp's own activity code where there is one (under
`temporalio.testing.ActivityEnvironment`), so the check sends exactly the parameters
onramp sends in production. Everything made is deleted (or archived) by the last row.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.stripe_billing import StripeBillingActivities
from activities.stripe_checkout import StripeCheckoutActivities
from activities.stripe_connect import StripeConnectActivities
from activities.stripe_customers import StripeCustomerActivities
from onramp import tokens
from worker.stripe_check.records import CheckFailed, Made, Row, describe
from workflows.contracts.checkout import CreateCheckoutSessionInput, ExpireCheckoutSessionInput
from workflows.contracts.common import (
    CreateStripeObjectInput,
    CreateTestClockInput,
    DeleteStripeObjectInput,
    ReadStripeObjectInput,
)
from workflows.contracts.onboarding import AccountRef, CreateAccountLinkInput
from workflows.contracts.subscription import (
    AttachPaymentMethodInput,
    ChangePriceInput,
    CreateSubscriptionInput,
    PayInvoiceInput,
    SetDefaultPaymentMethodInput,
)

T = TypeVar("T")

DAY = 86_400
# Stripe's test payment methods (test mode only, hence only here and in tests).
CARD_OK = "pm_card_visa"
CARD_NEEDS_AUTHENTICATION = "pm_card_authenticationRequired"
CLOCK_READY_TIMEOUT_SECONDS = 120.0


class StripeCheck:
    """The rows, in order; each needs what earlier rows made."""

    def __init__(self, client: stripe.StripeClient, public_url: str) -> None:
        self.stripe = client
        self.public_url = public_url.rstrip("/")
        self.run_id = secrets.token_hex(6)
        self.user_id = f"onramp-check-{self.run_id}"
        self.email = f"onramp-check+{self.run_id}@example.com"
        self.environment = ActivityEnvironment()
        self.customer_activities = StripeCustomerActivities(client)
        # The account link's `state` is derived from this secret (and the link sealed
        # under it); any value will do here.
        self.token_secret = SecretStr(secrets.token_urlsafe(32))
        self.connect_activities = StripeConnectActivities(client, self.token_secret)
        self.checkout_activities = StripeCheckoutActivities(client)
        self.billing_activities = StripeBillingActivities(client)
        self.made = Made()
        self.rows: list[Row] = []

    def key(self, step: str) -> str:
        return f"onramp-check/{self.run_id}/{step}"

    async def activity(self, function: Callable[[Any], Awaitable[T]], argument: Any) -> T:
        """Run one of onramp's activity methods as the worker would, without a server."""
        result: T = await self.environment.run(function, argument)
        return result

    async def row(self, name: str, needs: list[str], body: Callable[[], Awaitable[str]]) -> None:
        missing = [need for need in needs if not getattr(self.made, need)]
        if missing:
            self.rows.append(Row(name, False, f"not run: needs {', '.join(missing)}"))
            return
        try:
            detail = await body()
        except Exception as error:  # every failure is a row of the table
            self.rows.append(Row(name, False, describe(error)))
        else:
            self.rows.append(Row(name, True, detail))

    async def run(self) -> list[Row]:
        try:
            await self.row("test clock", [], self.create_test_clock)
            await self.row("customer on the test clock", ["test_clock"], self.create_customer)
            await self.row("Express account", [], self.create_account)
            await self.row("account link", ["account"], self.create_account_link)
            await self.row("catalog (product, two prices)", [], self.create_catalog)
            await self.row("Checkout Session", ["customers", "prices"], self.checkout_session)
            await self.row("card as default payment method", ["customers"], self.attach_card)
            await self.row(
                "subscription on the test clock", ["card", "prices"], self.create_subscription
            )
            await self.row("renewal by advancing the clock", ["subscription"], self.renew)
            await self.row("price change", ["subscription"], self.change_price)
            await self.row(
                "authentication-required card", ["test_clock", "prices"], self.needs_authentication
            )
        finally:
            await self.row("clean-up", [], self.clean_up)
        return self.rows

    # rows

    async def create_test_clock(self) -> str:
        today = int(time.time()) // DAY * DAY
        clock_id = await self.activity(
            self.customer_activities.create_stripe_test_clock,
            CreateTestClockInput(user_id=self.user_id, generation=0, frozen_time=today),
        )
        self.made.test_clock = clock_id
        return clock_id

    async def _customer(self, generation: int) -> str:
        customer_id = await self.activity(
            self.customer_activities.create_stripe_customer,
            CreateStripeObjectInput(
                user_id=self.user_id,
                email=self.email,
                generation=generation,
                test_clock=self.made.test_clock,
            ),
        )
        self.made.customers.append(customer_id)
        customer = await self.stripe.v1.customers.retrieve_async(customer_id)
        if customer.test_clock != self.made.test_clock:
            raise CheckFailed(f"{customer_id} is on clock {customer.test_clock!r}")
        return customer_id

    async def create_customer(self) -> str:
        return await self._customer(0)

    async def create_account(self) -> str:
        account_id = await self.activity(
            self.customer_activities.create_connect_account,
            CreateStripeObjectInput(user_id=self.user_id, email=self.email, generation=0),
        )
        self.made.account = account_id
        snapshot = await self.activity(
            self.connect_activities.retrieve_connect_account, AccountRef(account_id=account_id)
        )
        return f"{account_id} (details submitted: {snapshot.details_submitted})"

    async def create_account_link(self) -> str:
        assert self.made.account is not None
        link = await self.activity(
            self.connect_activities.create_account_link,
            CreateAccountLinkInput(
                account_id=self.made.account,
                token_id=self.run_id,
                public_url=self.public_url,
                workflow_id=f"onramp-check-{self.run_id}",
                operation_id="account-link",
            ),
        )
        url = tokens.unseal_text(self.token_secret, self.run_id, link.sealed_url) or ""
        if not url.startswith(("https://", "http://")):
            raise CheckFailed("the sealed link does not open to a URL")
        return f"expires {link.expires_at:%H:%M:%S} UTC"

    async def create_catalog(self) -> str:
        product = await self.stripe.v1.products.create_async(
            {"name": f"onramp check {self.run_id}", "metadata": {"onramp_check": self.run_id}}
        )
        self.made.product = product.id
        for amount in (1000, 2500):
            price = await self.stripe.v1.prices.create_async(
                {
                    "product": product.id,
                    "currency": "usd",
                    "unit_amount": amount,
                    "recurring": {"interval": "month"},
                    "metadata": {"onramp_check": self.run_id},
                }
            )
            self.made.prices.append(price.id)
        return f"{product.id}, {', '.join(self.made.prices)}"

    async def checkout_session(self) -> str:
        session = await self.activity(
            self.checkout_activities.create_checkout_session,
            CreateCheckoutSessionInput(
                user_id=self.user_id,
                workflow_id=f"onramp-check-{self.run_id}",
                customer_id=self.made.customers[0],
                price_id=self.made.prices[0],
                success_url=f"{self.public_url}/v1/checkout/return?session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=self.public_url,
                idempotency_key=self.key("checkout"),
            ),
        )
        if session.status != "open" or not session.url:
            raise CheckFailed(
                f"session {session.session_id} is {session.status}, url {session.url}"
            )
        expired = await self.activity(
            self.checkout_activities.expire_checkout_session,
            ExpireCheckoutSessionInput(
                session_id=session.session_id, idempotency_key=self.key("checkout-expire")
            ),
        )
        if expired.status != "expired":
            raise CheckFailed(f"expiring {session.session_id} left it {expired.status}")
        return f"{session.session_id} opened and expired"

    async def _attach(self, customer_id: str, card: str, step: str) -> str:
        pm_id = await self.activity(
            self.billing_activities.attach_payment_method,
            AttachPaymentMethodInput(
                customer_id=customer_id, payment_method=card, idempotency_key=self.key(step)
            ),
        )
        await self.activity(
            self.billing_activities.set_default_payment_method,
            SetDefaultPaymentMethodInput(
                customer_id=customer_id,
                payment_method_id=pm_id,
                idempotency_key=self.key(f"{step}-default"),
            ),
        )
        return pm_id

    async def attach_card(self) -> str:
        self.made.card = await self._attach(self.made.customers[0], CARD_OK, "card")
        return self.made.card

    async def _subscribe(self, customer_id: str, payment_method_id: str, step: str) -> str:
        snapshot = await self.activity(
            self.billing_activities.create_subscription,
            CreateSubscriptionInput(
                user_id=self.user_id,
                workflow_id=f"onramp-check-{self.run_id}",
                customer_id=customer_id,
                price_id=self.made.prices[0],
                payment_method_id=payment_method_id,
                idempotency_key=self.key(step),
            ),
        )
        return snapshot.subscription_id

    async def _pay_first_invoice(self, subscription_id: str, payment_method_id: str) -> str:
        """Pay the first invoice of a subscription created `incomplete` with onramp's own
        `pay_invoice` step (what it does after a `default_incomplete` create); answers
        `paid`, `requires_action` or `declined`."""
        sub = await self.stripe.v1.subscriptions.retrieve_async(subscription_id)
        if sub.status != "incomplete" or not isinstance(sub.latest_invoice, str):
            return "paid" if sub.status == "active" else sub.status
        result = await self.activity(
            self.billing_activities.pay_invoice,
            PayInvoiceInput(
                invoice_id=sub.latest_invoice,
                payment_method_id=payment_method_id,
                idempotency_key=self.key(f"pay-{subscription_id}"),
            ),
        )
        return result.outcome

    async def create_subscription(self) -> str:
        assert self.made.card is not None
        subscription_id = await self._subscribe(self.made.customers[0], self.made.card, "subscribe")
        self.made.subscription = subscription_id
        outcome = await self._pay_first_invoice(subscription_id, self.made.card)
        if outcome != "paid":
            raise CheckFailed(f"the first invoice of {subscription_id} was {outcome}")
        sub = await self.stripe.v1.subscriptions.retrieve_async(subscription_id)
        if sub.status != "active":
            raise CheckFailed(f"{subscription_id} is {sub.status}, not active")
        if sub.test_clock != self.made.test_clock:
            raise CheckFailed(f"{subscription_id} is on clock {sub.test_clock!r}")
        return subscription_id

    async def renew(self) -> str:
        assert self.made.subscription is not None and self.made.test_clock is not None
        before = await self.activity(
            self.billing_activities.read_subscription,
            ReadStripeObjectInput(stripe_id=self.made.subscription),
        )
        assert before.current_period_end is not None
        target = int(before.current_period_end.timestamp()) + 3600
        clocks = self.stripe.v1.test_helpers.test_clocks
        await clocks.advance_async(self.made.test_clock, {"frozen_time": target})
        deadline = time.monotonic() + CLOCK_READY_TIMEOUT_SECONDS
        while (clock := await clocks.retrieve_async(self.made.test_clock)).status != "ready":
            if clock.status == "internal_failure" or time.monotonic() > deadline:
                raise CheckFailed(f"the test clock is {clock.status} after the advance")
            await asyncio.sleep(2)
        after = await self.activity(
            self.billing_activities.read_subscription,
            ReadStripeObjectInput(stripe_id=self.made.subscription),
        )
        if after.status != "active" or after.current_period_end == before.current_period_end:
            raise CheckFailed(
                f"after the advance the subscription is {after.status}, "
                f"period end {after.current_period_end}"
            )
        return f"period end {before.current_period_end:%F} -> {after.current_period_end:%F}"

    async def change_price(self) -> str:
        assert self.made.subscription is not None
        snapshot = await self.activity(
            self.billing_activities.change_subscription_price,
            ChangePriceInput(
                subscription_id=self.made.subscription,
                price_id=self.made.prices[1],
                proration_behavior="always_invoice",
                idempotency_key=self.key("change-price"),
            ),
        )
        if snapshot.price_id != self.made.prices[1]:
            raise CheckFailed(f"the subscription kept price {snapshot.price_id}")
        return f"{self.made.prices[0]} -> {snapshot.price_id}"

    async def needs_authentication(self) -> str:
        customer_id = await self._customer(1)
        try:
            pm_id = await self._attach(customer_id, CARD_NEEDS_AUTHENTICATION, "sca-card")
        except Exception as error:
            raise CheckFailed(
                f"{CARD_NEEDS_AUTHENTICATION} is not usable here: {describe(error)}"
            ) from None
        try:
            subscription_id = await self._subscribe(customer_id, pm_id, "sca-subscribe")
        except Exception as error:
            raise CheckFailed(
                "onramp's subscription create was refused instead of leaving the payment "
                f"to authenticate: {describe(error)}"
            ) from None
        outcome = await self._pay_first_invoice(subscription_id, pm_id)
        if outcome == "requires_action":
            return f"{subscription_id}: the payment waits for the customer's authentication"
        sub = await self.stripe.v1.subscriptions.retrieve_async(subscription_id)
        raise CheckFailed(
            f"{subscription_id} is {sub.status} ({outcome}): the payment did not ask for action"
        )

    async def clean_up(self) -> str:
        """Delete (or archive) everything made; every step is tried, failures reported."""
        problems: list[str] = []

        async def attempt(what: str, call: Awaitable[object]) -> None:
            try:
                await call
            except Exception as error:  # report it and go on cleaning
                problems.append(f"{what}: {describe(error)}")

        for customer_id in self.made.customers:
            await attempt(
                customer_id,
                self.activity(
                    self.customer_activities.delete_stripe_customer,
                    DeleteStripeObjectInput(stripe_id=customer_id),
                ),
            )
        if self.made.test_clock:
            await attempt(
                self.made.test_clock,
                self.stripe.v1.test_helpers.test_clocks.delete_async(self.made.test_clock),
            )
        if self.made.account:
            await attempt(
                self.made.account,
                self.activity(
                    self.customer_activities.delete_connect_account,
                    DeleteStripeObjectInput(stripe_id=self.made.account),
                ),
            )
        # Stripe deletes no price that was used, so the catalog is archived.
        for price_id in self.made.prices:
            await attempt(price_id, self.stripe.v1.prices.update_async(price_id, {"active": False}))
        if self.made.product:
            await attempt(
                self.made.product,
                self.stripe.v1.products.update_async(self.made.product, {"active": False}),
            )
        if problems:
            raise CheckFailed("; ".join(problems))
        return "deleted customers, clock and account; prices and product archived"
