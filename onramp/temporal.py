"""Connecting to Temporal the same way from every process."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from onramp import tracing


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    runtime: Runtime | None = None,
    fail_fast: bool = False,
) -> Client:
    """A client with the pydantic data converter (every input and result is a model).

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
        data_converter=pydantic_data_converter,
        runtime=runtime,
        retry_config=retry_config,
        # Tracing (when on): spans for every call, context in the Temporal headers.
        interceptors=tracing.temporal_interceptors(),
    )
