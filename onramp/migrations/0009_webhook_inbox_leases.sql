-- The webhook inbox is dispatched after the answer to Stripe, by dispatchers in every
-- API process: a dispatcher claims a row by setting a lease in a short transaction
-- (`FOR UPDATE SKIP LOCKED`), commits, then makes the Temporal call without holding a
-- lock or a connection. A lease that runs out (its process died mid-call) lets another
-- dispatcher take the row; `lease_id` says whose claim an outcome belongs to, so a late
-- answer to a lost lease never overwrites the new owner's.
-- `next_attempt_at` spaces retries while Temporal is down (capped backoff); an operator's
-- replay ignores it, never a live lease.
ALTER TABLE webhook_events
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN lease_id uuid,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();

-- What the dispatchers look for, oldest first (and the inbox lag); small, because rows
-- leave it as soon as they are dispatched.
CREATE INDEX webhook_events_pending ON webhook_events (received_at) WHERE status = 'pending';
