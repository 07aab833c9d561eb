"""The platform's side of payload encryption, as the tests use it: the example
platform's codec (`examples/platform/codec.py`), Temporal's encryption-sample format
written with nothing of onramp's. That it reads what onramp seals (and onramp reads what
it seals) is the format's proof."""

from __future__ import annotations

import dataclasses

from temporalio.converter import DataConverter, default

from examples.platform.codec import SampleEncryptionCodec, parse_keys
from tests.support.harness import PAYLOAD_KEYS

__all__ = ["SampleEncryptionCodec", "platform_converter"]


def platform_converter(keys: str = PAYLOAD_KEYS) -> DataConverter:
    """The platform's converter with the keys of an ONRAMP_PAYLOAD_KEYS value."""
    return dataclasses.replace(default(), payload_codec=SampleEncryptionCodec(parse_keys(keys)))
