"""Stripe webhook ingress: verify, store in the inbox, route to a workflow, answer.

`ingress` is the HTTP route, `signature` checks `Stripe-Signature`, `events` parses the
body, `routing` decides which workflow an event belongs to, `dispatch` talks to Temporal
and records the outcome, `replay` re-dispatches stored events from the command line,
`metrics` holds the Prometheus series.
"""
