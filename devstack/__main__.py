"""`python -m devstack`: the whole embedded stack in the foreground (`onramp dev` runs it)."""

from devstack.dev import run_dev_stack

raise SystemExit(run_dev_stack())
