"""The codec itself: Temporal's sample format, rotation, clear refusals; the key setting
validated and never shown."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError

from onramp.payload_codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecodeError,
    onramp_data_converter,
)
from onramp.settings import PayloadCodecSettings, PayloadKey, parse_payload_keys
from tests.encryption.sample_codec import SampleEncryptionCodec
from workflows.contracts.signup import SignupInput


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _keys(*ids: str) -> list[PayloadKey]:
    return parse_payload_keys(",".join(f"{key_id}:{_key()}" for key_id in ids))


PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"email":"ada@example.com"}')


async def test_a_payload_is_sealed_in_the_sample_format_and_opens_again() -> None:
    codec = EncryptionCodec(_keys("k1"))
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"ada@example.com" not in sealed.data
    assert len(sealed.data) == 12 + len(PLAIN.SerializeToString()) + 16  # nonce, tag
    assert await codec.decode([sealed]) == [PLAIN]
    # A fresh nonce each time: the same payload never seals to the same bytes.
    (again,) = await codec.encode([PLAIN])
    assert again.data != sealed.data


async def test_temporals_sample_codec_and_onramps_read_each_other() -> None:
    raw = os.urandom(32)
    ours = EncryptionCodec([PayloadKey(key_id="shared", key=raw)])
    theirs = SampleEncryptionCodec({"shared": raw})
    assert await theirs.decode(await ours.encode([PLAIN])) == [PLAIN]
    assert await ours.decode(await theirs.encode([PLAIN])) == [PLAIN]


async def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old = _keys("old")
    new_first = [*_keys("new"), *old]
    (sealed_before,) = await EncryptionCodec(old).encode([PLAIN])
    rotated = EncryptionCodec(new_first)
    (sealed_after,) = await rotated.encode([PLAIN])
    assert sealed_after.metadata[KEY_ID] == b"new"
    assert await rotated.decode([sealed_before, sealed_after]) == [PLAIN, PLAIN]


async def test_an_unknown_key_id_fails_decoding_clearly() -> None:
    (sealed,) = await EncryptionCodec(_keys("retired")).encode([PLAIN])
    with pytest.raises(PayloadDecodeError, match=r"key id 'retired'.*ONRAMP_PAYLOAD_KEYS"):
        await EncryptionCodec(_keys("current")).decode([sealed])


async def test_an_altered_payload_or_a_wrong_key_under_the_same_id_is_refused() -> None:
    codec = EncryptionCodec(_keys("k1"))
    (sealed,) = await codec.encode([PLAIN])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    altered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:5])
    impostor = EncryptionCodec(_keys("k1"))
    for bad, reader in ((altered, codec), (truncated, codec), (sealed, impostor)):
        with pytest.raises(PayloadDecodeError, match="does not decrypt"):
            await reader.decode([bad])


async def test_plain_payloads_pass_decoding_unchanged() -> None:
    # Histories written before encryption was turned on stay readable.
    assert await EncryptionCodec(_keys("k1")).decode([PLAIN]) == [PLAIN]


async def test_the_data_converter_encrypts_models_and_failures_only_with_keys() -> None:
    assert onramp_data_converter([]) is pydantic_data_converter
    converter = onramp_data_converter(_keys("k1"))
    request = SignupInput(user_id="u1", email="ada@example.com", username="ada")
    (payload,) = await converter.encode([request])
    assert b"ada@example.com" not in payload.SerializeToString()
    assert await converter.decode([payload], [SignupInput]) == [request]
    # An error's text may quote an email or a Stripe id: it is sealed too.
    failure = Failure()
    await converter.encode_failure(ApplicationError("no customer for ada@example.com"), failure)
    assert b"ada@example.com" not in failure.SerializeToString()
    assert "ada@example.com" in str(await converter.decode_failure(failure))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("k1", "must look like <key id>:<base64 key>"),
        ("bad id!:" + base64.b64encode(b"x" * 32).decode(), "must look like"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(b"x" * 16).decode(), "must be 32 bytes"),
        (f"k1:{base64.b64encode(b'x' * 32).decode()},k1:{base64.b64encode(b'y' * 32).decode()}",
         "listed twice"),
    ],
)  # fmt: skip
def test_the_keys_setting_is_validated_and_never_repeats_a_key(raw: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PayloadCodecSettings.model_validate({"onramp_payload_keys": raw})
    assert message in str(refused.value)
    secret = raw.rpartition(":")[2]
    assert len(secret) < 8 or secret not in str(refused.value)


def test_a_configured_key_never_prints() -> None:
    key = _key()
    settings = PayloadCodecSettings.model_validate({"onramp_payload_keys": f"k1:{key}"})
    shown = f"{settings!r} {settings} {settings.model_dump()} {settings.model_dump_json()}"
    assert key not in shown and base64.b64decode(key).hex() not in shown
    assert settings.onramp_payload_keys[0].key_id == "k1"
    assert PayloadCodecSettings.model_validate({}).onramp_payload_keys == []
