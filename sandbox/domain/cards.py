"""Stripe's test payment-method tokens and what happens when each one is charged.

A declining card attaches fine and fails only when charged (at Stripe only
`pm_card_chargeCustomerFail` behaves so; the sandbox keeps every decline for the charge so
tests can set one up as a default payment method). `pm_delayed_*` are sandbox-only bank
debits whose outcome is known only when the payment settles.

Cards that require authentication (3-D Secure) succeed only once the customer completes
it: a charge made without the customer at hand (subscription create or update through
the API, a renewal, `invoices.pay`) leaves the invoice waiting for that action; Checkout
authenticates in its own page.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass

from sandbox.domain.jsontypes import Obj


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    funding: str = "credit"
    decline: Decline | None = None
    """Why a charge fails (after authentication, for a card that needs it)."""
    delayed: bool = False
    authentication: bool = False
    """Every payment needs the customer's 3-D Secure authentication first."""


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT_FUNDS = Decline(
    "card_declined", "insufficient_funds", "Your card has insufficient funds."
)
AUTHENTICATION_REQUIRED = Decline(
    "authentication_required",
    "authentication_required",
    "Your card was declined. This transaction requires authentication.",
)
"""Not a decline the customer can't fix: the payment waits for 3-D Secure (requires_action)."""
AUTHENTICATION_FAILED = Decline(
    "payment_intent_authentication_failure",
    None,
    "The provided PaymentMethod has failed authentication. You can provide "
    "payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
)

CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556", "debit"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_mastercard_debit": TestCard("mastercard", "8210", "debit"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_discover": TestCard("discover", "1117"),
    "pm_card_chargeDeclined": TestCard("visa", "0002", decline=GENERIC),
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", decline=GENERIC),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", decline=INSUFFICIENT_FUNDS),
    # Stripe's testing docs: 4000 0027 6000 3184 requires authentication on every payment,
    # however it was set up; 4000 0000 0000 3220 requires 3-D Secure 2 on every payment;
    # 4000 0082 6000 3178 requires authentication and then declines (insufficient funds).
    "pm_card_authenticationRequired": TestCard("visa", "3184", authentication=True),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", authentication=True),
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": TestCard(
        "visa", "3178", decline=INSUFFICIENT_FUNDS, authentication=True
    ),
    "pm_card_chargeDeclinedLostCard": TestCard(
        "visa", "9987", decline=Decline("card_declined", "lost_card", "Your card was declined.")
    ),
    "pm_card_chargeDeclinedStolenCard": TestCard(
        "visa", "9979", decline=Decline("card_declined", "stolen_card", "Your card was declined.")
    ),
    "pm_card_chargeDeclinedFraudulent": TestCard(
        "visa", "0019", decline=Decline("card_declined", "fraudulent", "Your card was declined.")
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa",
        "0069",
        decline=Decline("expired_card", "expired_card", "Your card has expired."),
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard(
        "visa",
        "0127",
        decline=Decline(
            "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
        ),
    ),
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa",
        "0119",
        decline=Decline(
            "processing_error",
            "processing_error",
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ),
    "pm_delayed_success": TestCard("bank", "6789", "debit", delayed=True),
    "pm_delayed_fail": TestCard(
        "bank",
        "1116",
        "debit",
        decline=Decline(
            "payment_method_provider_decline",
            "insufficient_funds",
            "The customer's bank account could not be debited.",
        ),
        delayed=True,
    ),
}


def _fingerprint() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=16))


def _bank_account(card: TestCard) -> Obj:
    return {
        "account_holder_type": "individual",
        "account_type": "checking",
        "bank_name": "STRIPE TEST BANK",
        "financial_connections_account": None,
        "fingerprint": _fingerprint(),
        "last4": card.last4,
        "networks": {"preferred": "ach", "supported": ["ach"]},
        "routing_number": "110000000",
        "status_details": None,
    }


def _card(card: TestCard, created: int) -> Obj:
    year = dt.datetime.fromtimestamp(created, dt.UTC).year
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "display_brand": card.brand,
        "exp_month": 12,
        "exp_year": year + 3,
        "fingerprint": _fingerprint(),
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def payment_method_from_token(token: str, pm_id: str, created: int) -> Obj:
    """The `payment_method` object Stripe creates from a test token."""
    card = CARDS[token]
    kind = "us_bank_account" if card.delayed else "card"
    details = _bank_account(card) if card.delayed else _card(card, created)
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        kind: details,
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": kind,
    }
