"""Runnable examples of what a platform that runs onramp writes on its own side."""
