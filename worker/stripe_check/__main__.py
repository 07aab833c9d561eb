"""`python -m worker.stripe_check`."""

from worker.stripe_check.command import main

main()
