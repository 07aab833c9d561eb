"""Payload encryption: the keys both processes encrypt and decrypt Temporal payloads with,
and the codec server the Temporal UI decodes them through (docs/ENCRYPTION.md)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretBytes, field_validator, model_validator
from pydantic_settings import NoDecode

from onramp.settings.shared import Concern
from onramp.settings.values import HttpUrlStr, stripe_key_is_live

PAYLOAD_KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class PayloadKey(BaseModel):
    """One AES-256 key and the id written beside every payload it encrypts; the key
    stays `**********` in reprs and errors."""

    key_id: str
    key: SecretBytes


def parse_payload_keys(raw: str) -> list[PayloadKey]:
    """Parse `ONRAMP_PAYLOAD_KEYS` (`<key id>:<base64 32-byte key>,...`); an empty value
    is no key (payloads stay plain). No message repeats a key."""
    keys: list[PayloadKey] = []
    for position, entry in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not entry:
            continue
        key_id, separator, encoded = entry.partition(":")
        if not separator or not _KEY_ID.match(key_id):
            raise ValueError(
                f"entry {position} must look like <key id>:<base64 key>, the id 1-64 "
                "characters of A-Z a-z 0-9 . _ -"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"entry {position} ({key_id}): the key is not base64") from None
        if len(key) != PAYLOAD_KEY_BYTES:
            raise ValueError(
                f"entry {position} ({key_id}): the key must be {PAYLOAD_KEY_BYTES} bytes "
                f"(AES-256), not {len(key)}; make one with "
                "`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`"
            )
        keys.append(PayloadKey(key_id=key_id, key=SecretBytes(key)))
    return check_payload_keys(keys)


def check_payload_keys(keys: list[PayloadKey]) -> list[PayloadKey]:
    """Refuse an id listed twice: a payload names its key by id alone."""
    seen: set[str] = set()
    for entry in keys:
        if entry.key_id in seen:
            raise ValueError(f"key id {entry.key_id!r} is listed twice: each key needs its own id")
        seen.add(entry.key_id)
    return keys


def _origin(value: str) -> str:
    parts = urlsplit(value.rstrip("/"))
    if parts.path or parts.query or parts.fragment or parts.username:
        raise ValueError("must be an origin, scheme://host[:port], e.g. http://127.0.0.1:8233")
    return f"{parts.scheme}://{parts.netloc}"


class PayloadCodecSettings(Concern):
    """Payload encryption: the keys of the Temporal payload codec (API and worker)."""

    onramp_payload_keys: Annotated[list[PayloadKey], NoDecode] = Field(
        default_factory=list,
        description="comma list of `<key id>:<base64 32-byte key>`: the first encrypts every "
        "Temporal payload (AES-256-GCM), all decrypt (rotation: put the new key first, keep "
        "the old ones); the API and the worker need the same list. Unset: payloads are plain "
        "(docs/ENCRYPTION.md)",
    )

    @field_validator("onramp_payload_keys", mode="before")
    @classmethod
    def _split_payload_keys(cls, value: object) -> object:
        # Named apart from the other concerns' validators: in a composed settings class
        # one name would replace the other.
        return parse_payload_keys(value) if isinstance(value, str) else value

    @field_validator("onramp_payload_keys")
    @classmethod
    def _distinct_payload_key_ids(cls, value: list[PayloadKey]) -> list[PayloadKey]:
        return check_payload_keys(value)


class CodecServerSettings(Concern):
    """The codec server: `/v1/codec/decode` and `/encode` for the Temporal UI (API)."""

    temporal_ui_origin: Annotated[HttpUrlStr, AfterValidator(_origin)] | None = Field(
        default=None,
        description="origin of the Temporal UI (`scheme://host[:port]`) allowed to call the "
        "codec server from the browser (CORS); unset: no origin is",
    )
    codec_server_open: bool = Field(
        default=False,
        description="`true` lets the codec server answer without an admin key, for the dev "
        "server's UI, which has no key to send (`onramp dev`); refused with a live Stripe key",
    )

    @model_validator(mode="after")
    def _open_only_in_test_mode(self) -> Self:
        # Composed into ApiSettings, the Stripe key is there: an open codec server would
        # hand anyone who reaches the API every customer's data in live mode.
        stripe_key = getattr(self, "stripe_secret_key", None)
        if self.codec_server_open and (
            stripe_key is None or stripe_key_is_live(stripe_key.get_secret_value())
        ):
            raise ValueError(
                "CODEC_SERVER_OPEN=true is for development with a test-mode Stripe key only"
            )
        return self
