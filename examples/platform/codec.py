"""The payload codec a platform's worker needs when onramp encrypts its payloads
(`ONRAMP_PAYLOAD_KEYS` set on onramp's side): Temporal's sample encryption codec format,
written here as a platform would, with nothing of onramp's.

Format: metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`; data is a
12-byte nonce, then the AES-256-GCM ciphertext and tag of the serialized inner
`Payload`. The platform is given the same keys (`<id>:<base64 of 32 bytes>`, comma
separated, the first encrypts): its answers are then encrypted too, so onramp's history
holds no tenant data in the clear either.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Sequence

import temporalio.converter
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

_ENCODING = b"binary/encrypted"
_KEY_ID = "encryption-key-id"


class SampleEncryptionCodec(PayloadCodec):
    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise ValueError("no payload key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._key_id = next(iter(keys))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        sealed = []
        for payload in payloads:
            nonce = os.urandom(12)
            data = self._ciphers[self._key_id].encrypt(nonce, payload.SerializeToString(), None)
            sealed.append(
                Payload(
                    metadata={"encoding": _ENCODING, _KEY_ID: self._key_id.encode()},
                    data=nonce + data,
                )
            )
        return sealed

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        opened = []
        for payload in payloads:
            if payload.metadata.get("encoding") != _ENCODING:
                opened.append(payload)  # not encrypted: written before keys were set
                continue
            key_id = payload.metadata[_KEY_ID].decode()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise ValueError(f"no payload key {key_id!r} is configured")
            inner = cipher.decrypt(payload.data[:12], payload.data[12:], None)
            opened.append(Payload.FromString(inner))
        return opened


def parse_keys(text: str) -> dict[str, bytes]:
    """`id:base64,id:base64` (first encrypts) → {id: 32-byte key}, in order."""
    keys: dict[str, bytes] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key_id, _, encoded = entry.partition(":")
        key = base64.b64decode(encoded, validate=True)
        if not key_id or len(key) != 32:
            raise ValueError(f"payload key {key_id!r}: expected `<id>:<base64 of 32 bytes>`")
        keys[key_id] = key
    return keys


def data_converter_from_env() -> DataConverter:
    """The SDK's default converter, with the codec when `ONRAMP_PAYLOAD_KEYS` is set."""
    keys = parse_keys(os.environ.get("ONRAMP_PAYLOAD_KEYS", ""))
    default = temporalio.converter.default()
    if not keys:
        return default
    return dataclasses.replace(default, payload_codec=SampleEncryptionCodec(keys))
