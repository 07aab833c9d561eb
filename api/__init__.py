"""The HTTP API: starts workflows, answers from Postgres, turns webhooks into signals."""
