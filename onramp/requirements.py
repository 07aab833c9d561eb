"""Stripe's Connect requirement names (`requirements.currently_due`), in words a person reads.

Stripe names what it still needs as dotted paths: `external_account`,
`individual.verification.document`, `person_1AbC.dob.day`, `tos_acceptance.date`.
The return page shows them as sentences, one per thing to do: the parts of one field
(a date of birth's day, month and year; an address's lines) become one sentence, and a
name this table does not know is still shown, as a readable fallback, never dropped:
whatever Stripe asks for, the person must learn that something is left.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Whole names (or name prefixes ending in "."), matched before the per-person fields.
_ACCOUNT: dict[str, str] = {
    "external_account": "Add the bank account your payouts go to.",
    "tos_acceptance.": "Accept Stripe's services agreement.",
    "business_type": "Say what kind of business you are (an individual, a company, …).",
    "business_profile.url": "Give your business's website, or a page that shows what you sell.",
    "business_profile.mcc": "Choose the industry your business is in.",
    "business_profile.product_description": "Describe what you sell.",
    "business_profile.support_phone": "Give a phone number your customers can call.",
    "business_profile.name": "Give your business's name.",
    "settings.payments.statement_descriptor": (
        "Choose how your business's name appears on your customers' card statements."
    ),
    "company.name": "Give your company's legal name.",
    "company.tax_id": "Give your company's tax ID.",
    "company.address.": "Give your company's address.",
    "company.phone": "Give your company's phone number.",
    "company.verification.document": "Upload a document that verifies your company.",
    "company.owners_provided": "Confirm that you have listed all of your company's owners.",
    "company.directors_provided": "Confirm that you have listed all of your company's directors.",
    "company.executives_provided": (
        "Confirm that you have listed all of your company's executives."
    ),
}

# The fields of a person, with `{whose}` the person's possessive ("your", …).
_PERSON: dict[str, str] = {
    "verification.document": (
        "Upload a photo of {whose} identity document (a passport, a driving licence or an ID card)."
    ),
    "verification.additional_document": (
        "Upload a document that proves {whose} address (a bank statement or a utility bill)."
    ),
    "dob.": "Give {whose} date of birth.",
    "address.": "Give {whose} home address.",
    "first_name": "Give {whose} legal name.",
    "last_name": "Give {whose} legal name.",
    "email": "Give {whose} email address.",
    "phone": "Give {whose} phone number.",
    "ssn_last_4": "Give the last 4 digits of {whose} Social Security number.",
    "id_number": "Give {whose} government ID number.",
    "relationship.title": "Give {whose} job title.",
    "relationship.": "Say what {whose} role in the business is.",
}

_PEOPLE: dict[str, str] = {
    "individual": "your",
    "representative": "your company representative's",
    "owners": "an owner's",
    "directors": "a director's",
    "executives": "an executive's",
}
_PERSON_ID = re.compile(r"^person_[A-Za-z0-9]+$")


def _matches(name: str, key: str) -> bool:
    return name.startswith(key) if key.endswith(".") else name == key


def _person_sentence(whose: str, field: str) -> str | None:
    for key, sentence in _PERSON.items():
        if _matches(field, key):
            return sentence.format(whose=whose)
    return None


def _fallback(name: str) -> str:
    """A name nobody has put into words yet, still readable, with the name itself for
    whoever helps: `a.b_c` → "Stripe also needs: a, b c (a.b_c)."."""
    words = ", ".join(part.replace("_", " ") for part in name.split(".") if part)
    return f"Stripe also needs: {words or name} ({name})."


def describe(name: str) -> str:
    """One requirement in words (a fallback for a name this table does not know)."""
    for key, sentence in _ACCOUNT.items():
        if _matches(name, key):
            return sentence
    subject, _, field = name.partition(".")
    whose = _PEOPLE.get(subject)
    if whose is None and _PERSON_ID.match(subject):
        whose = "a listed person's"
    if whose is not None and field:
        said = _person_sentence(whose, field)
        if said is not None:
            return _capitalised(said)
    return _fallback(name)


def describe_all(names: Iterable[str]) -> list[str]:
    """The requirements in words, in Stripe's order, one sentence per thing to do."""
    sentences: list[str] = []
    for name in names:
        sentence = describe(name)
        if sentence not in sentences:
            sentences.append(sentence)
    return sentences


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]
