"""Type aliases for the JSON-shaped objects the sandbox stores and returns."""

from typing import Any

Obj = dict[str, Any]
"""A Stripe object (or any JSON object) as a plain dict."""
