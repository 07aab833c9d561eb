"""The worker process: builds the dependencies once and runs the Temporal worker."""
