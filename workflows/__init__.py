"""Deterministic orchestration: one workflow per module, its messages in `contracts/`."""
