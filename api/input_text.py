"""Text the API accepts, as the standards define it.

Emails are checked and normalised by `email-validator` (RFC 5321/5322 syntax, IDNA for
the domain, Unicode's unsafe characters), not by a home-made pattern: an address the
SMTP client later refuses strands a paid user who never gets the welcome email.

Free text (usernames, reasons) refuses what renders invisibly or rewrites what is shown
around it: control characters (C0, DEL, C1), format characters (zero-width spaces and
joiners, bidi embeddings, overrides and isolates, the byte-order mark), line and
paragraph separators, and lone surrogates (a JSON `\\ud800` escape decodes to one, and
Postgres cannot store it).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

# Unicode general categories refused in free text: Cc control (C0, DEL, C1), Cf format
# (U+200B zero-width space, U+200E/F marks, U+202A-U+202E embeddings and overrides,
# U+2066-U+2069 isolates, U+FEFF), Cs surrogate, Zl/Zp line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def first_unsafe_character(value: str) -> str | None:
    """The first character free text must not hold, or None."""
    for character in value:
        if unicodedata.category(character) in _UNSAFE_CATEGORIES:
            return character
    return None


def _describe(character: str) -> str:
    name = unicodedata.name(character, "")
    code_point = f"U+{ord(character):04X}"
    return f"{code_point} {name}" if name else code_point


def refuse_unsafe_characters(value: str) -> str:
    """A pydantic validator: the value unchanged, or a ValueError naming the character."""
    found = first_unsafe_character(value)
    if found is not None:
        raise ValueError(
            f"must not contain control, zero-width or bidirectional-override characters "
            f"(found {_describe(found)})"
        )
    return value


def normalize_email_address(value: str) -> str:
    """The address as `email-validator` normalises it (the domain lower-cased and in its
    ASCII form), or a ValueError saying what is wrong.

    An address whose local part needs SMTPUTF8 is refused: the welcome email has to go
    through whatever relay `SMTP_URL` names, and a relay without SMTPUTF8 refuses it on
    every attempt. No DNS lookup: signup must not depend on the resolver.
    """
    # The library names the offending character, but a control character inside its
    # message would reach logs and clients; name it ourselves first.
    refuse_unsafe_characters(value)
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise ValueError(f"must be an email address: {error}") from None
    # With allow_smtputf8=False the local part is ASCII, and `ascii_email` carries the
    # domain in its IDNA form, which every SMTP server accepts.
    address = checked.ascii_email or checked.normalized
    return address


SafeText = Annotated[str, AfterValidator(refuse_unsafe_characters)]
EmailAddress = Annotated[
    str,
    Field(max_length=254, examples=["sam@example.com"], json_schema_extra={"format": "email"}),
    AfterValidator(normalize_email_address),
]
