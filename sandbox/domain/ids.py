"""Stripe-looking random identifiers."""

import random
import string

_ALPHABET = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits

# Lengths as Stripe shows them (e.g. `cus_` + 14, `pi_`/`pm_`/`in_` + 24).
_LENGTHS = {
    "cus": 14,
    "prod": 14,
    "acct": 16,
    "si": 14,
    "evt": 24,
    "req": 14,
}


def new_id(prefix: str) -> str:
    """A fresh id such as `cus_Q3x...` (collisions are as unlikely as at Stripe)."""
    if prefix == "cs":
        return "cs_test_a1" + "".join(random.choices(_ALPHABET, k=56))
    length = _LENGTHS.get(prefix, 24)
    return f"{prefix}_" + "".join(random.choices(_ALPHABET, k=length))


def invoice_prefix() -> str:
    """The 8-character prefix Stripe gives each customer's invoice numbers."""
    return "".join(random.choices(_UPPER, k=8))


def token(length: int = 24) -> str:
    """A random opaque token for hosted-page URLs."""
    return "".join(random.choices(_ALPHABET, k=length))
