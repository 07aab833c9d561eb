"""`python -m devstack [--example]`: the whole embedded stack in the foreground (`onramp dev`
runs it)."""

import sys

from devstack.dev import run_dev_stack

raise SystemExit(run_dev_stack(sys.argv[1:]))
