"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from onramp import tracing
from onramp.payload_codec import onramp_data_converter
from onramp.settings import PayloadKey


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    runtime: Runtime | None = None,
    fail_fast: bool = False,
    payload_keys: Sequence[PayloadKey] = (),
) -> Client:
    """A client with the pydantic data converter (every input and result is a model),
    encrypting every payload when `payload_keys` are configured (ONRAMP_PAYLOAD_KEYS).

    `fail_fast` bounds the client's own retries of unavailable-server errors, for a
    caller (the API) that must answer quickly while Temporal is down.
    """
    retry_config = (
        RetryConfig(
            initial_interval_millis=100,
            max_interval_millis=500,
            max_elapsed_time_millis=2_000,
            max_retries=2,
        )
        if fail_fast
        else None
    )
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=onramp_data_converter(payload_keys),
        runtime=runtime,
        retry_config=retry_config,
        # Tracing (when on): spans for every call, context in the Temporal headers.
        interceptors=tracing.temporal_interceptors(),
    )
