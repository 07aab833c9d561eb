"""The example platform's codec reads what onramp's codec seals, and onramp's reads what
it seals: the two sides of the provisioning hook share the sample format and the keys."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from examples.platform.codec import SampleEncryptionCodec, parse_keys
from onramp.payload_codec import EncryptionCodec
from onramp.settings import PayloadKey

KEY = bytes(range(32))
KEYS_TEXT = f"k1:{base64.b64encode(KEY).decode()}"


def _payload() -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=b'{"user_id":"u_1"}')


async def test_onramp_seals_the_platform_opens_and_back() -> None:
    onramp = EncryptionCodec([PayloadKey(key_id="k1", key=SecretStr(KEY))])  # type: ignore[arg-type]
    platform = SampleEncryptionCodec(parse_keys(KEYS_TEXT))
    (sealed,) = await onramp.encode([_payload()])
    assert b"u_1" not in sealed.data
    assert await platform.decode([sealed]) == [_payload()]
    (answer,) = await platform.encode([_payload()])
    assert b"u_1" not in answer.data
    assert await onramp.decode([answer]) == [_payload()]


def test_a_malformed_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_keys("k1:" + base64.b64encode(b"short").decode())
