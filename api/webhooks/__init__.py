"""Stripe webhook ingress: verify, store in the inbox and answer; dispatch afterwards.

`ingress` is the HTTP route (store, answer, wake the dispatcher), `signature` checks
`Stripe-Signature`, `events` parses the body, `routing` decides which workflow an event
belongs to, `dispatch` claims inbox rows with leases, talks to Temporal and records the
outcome (the API process's `InboxDispatcher`), `replay` re-dispatches stored events from
the command line, `metrics` holds the Prometheus series.
"""
