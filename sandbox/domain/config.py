"""Start-up configuration of one sandbox process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox.domain.webhooks import RetryPolicy


@dataclass(frozen=True)
class EndpointConfig:
    url: str
    secret: str
    connect: bool = False


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 12111
    endpoints: list[EndpointConfig] = field(default_factory=list)
    state_file: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    save_interval: float = 1.0
    """Seconds between state-file writes while something changed (debounce)."""
    tick_interval: float = 1.0
    """Seconds between checks for due work (renewals, expiries) in real time."""
    rate_limit: float = 25.0
    """Requests per second per API key, Stripe's test-mode limit (0: no rate limits)."""
    endpoint_rate_limit: float = 25.0
    """Requests per second per API key and endpoint, Stripe's default."""
