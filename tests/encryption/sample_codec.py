"""A platform's worker as Temporal's encryption sample writes it, in no code of onramp's:
the SDK's default converter with an AES-256-GCM codec of one key. That it reads what
onramp seals (and onramp reads what it seals) is the format's proof.

The sample's format: metadata `encoding: binary/encrypted` and `encryption-key-id`;
data = 12-byte nonce || ciphertext+tag of the serialized inner `Payload`.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec, default

from tests.support.harness import PAYLOAD_KEYS


class SampleEncryptionCodec(PayloadCodec):
    """One key, as in the sample: everything is encrypted, only that key decrypts."""

    def __init__(self, key_id: str, key: bytes) -> None:
        self.key_id = key_id
        self.cipher = AESGCM(key)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            nonce = os.urandom(12)
            sealed = self.cipher.encrypt(nonce, payload.SerializeToString(), None)
            out.append(
                Payload(
                    metadata={
                        "encoding": b"binary/encrypted",
                        "encryption-key-id": self.key_id.encode(),
                    },
                    data=nonce + sealed,
                )
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            if payload.metadata.get("encoding", b"") != b"binary/encrypted":
                out.append(payload)
                continue
            key_id = payload.metadata.get("encryption-key-id", b"").decode()
            if key_id != self.key_id:
                raise ValueError(f"unrecognized key ID {key_id}")
            plain = self.cipher.decrypt(payload.data[:12], payload.data[12:], None)
            out.append(Payload.FromString(plain))
        return out


def platform_converter(keys: str = PAYLOAD_KEYS) -> DataConverter:
    """The platform's converter with the first key of `keys` (an ONRAMP_PAYLOAD_KEYS value)."""
    key_id, _, encoded = keys.split(",")[0].partition(":")
    codec = SampleEncryptionCodec(key_id, base64.b64decode(encoded))
    return dataclasses.replace(default(), payload_codec=codec)
