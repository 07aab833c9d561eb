"""Deterministic orchestration: one workflow per module, contracts in `contracts.py`."""
