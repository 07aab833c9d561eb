"""AES-256-GCM encryption of every Temporal payload, in the format of Temporal's own
encryption samples, so a platform's worker in any SDK can read what onramp sends it.

An encrypted payload's metadata is `encoding: binary/encrypted` and
`encryption-key-id: <key id>`; its data is a 12-byte random nonce followed by the
ciphertext and tag of the serialized inner `Payload`. The first configured key encrypts,
every configured key decrypts (rotation). A payload that is not encrypted passes through
decoding unchanged: histories written before encryption was turned on stay readable.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from onramp.settings import PayloadKey

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


@dataclass(frozen=True)
class RawPayload:
    """A payload as the codec server's JSON carries it, without Temporal's types."""

    metadata: dict[str, bytes]
    data: bytes

    def to_proto(self) -> Payload:
        return Payload(metadata=self.metadata, data=self.data)

    @classmethod
    def from_proto(cls, payload: Payload) -> RawPayload:
        return cls(metadata=dict(payload.metadata), data=payload.data)


class PayloadDecodeError(ValueError):
    """An encrypted payload this codec cannot open: its key id is not configured, or its
    bytes are not what that key sealed. The message names the key id, never a key."""


class EncryptionCodec(PayloadCodec):
    """Encrypts with the first key, decrypts with whichever key the payload names."""

    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise ValueError("the payload codec needs at least one key")
        self._ciphers = {key.key_id: AESGCM(key.key.get_secret_value()) for key in keys}
        self.key_id = keys[0].key_id
        self._encrypt_with = self._ciphers[self.key_id]

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encrypt_with.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", "replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecodeError(
                f"payload encrypted with key id {key_id!r}, which ONRAMP_PAYLOAD_KEYS does "
                "not list (a key removed too early, or another deployment's payload)"
            )
        try:
            inner = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
            return Payload.FromString(inner)
        except (InvalidTag, ValueError, DecodeError):
            raise PayloadDecodeError(
                f"payload with key id {key_id!r} does not decrypt: altered, or sealed with "
                "another key under the same id"
            ) from None

    def encode_raw(self, payloads: Sequence[RawPayload]) -> list[RawPayload]:
        """`encode` for the codec server, in plain Python types."""
        return [RawPayload.from_proto(self.encrypt(raw.to_proto())) for raw in payloads]

    def decode_raw(self, payloads: Sequence[RawPayload]) -> list[RawPayload]:
        """`decode` for the codec server; raises PayloadDecodeError."""
        return [RawPayload.from_proto(self.decrypt(raw.to_proto())) for raw in payloads]

    def key_ids(self) -> Iterable[str]:
        return self._ciphers.keys()


def onramp_data_converter(keys: Sequence[PayloadKey] = ()) -> DataConverter:
    """The pydantic data converter, with the encryption codec when keys are configured.

    With a codec, failures' messages and stack traces move into their encoded (hence
    encrypted) attributes too: an error's text may quote an email or a Stripe id.
    """
    if not keys:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
