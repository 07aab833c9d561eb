"""Stripe resources: each module has its handlers and the `ROUTES` it serves."""
