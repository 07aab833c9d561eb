-- The users of an endpoint whose events go through a retry lane (a delivery workflow
-- of their own) instead of the dispatcher's direct delivery, because one of their
-- events failed (or was replayed) and later events must wait behind it.
--
-- The dispatcher keeps this set in its own state; the table is for a dispatcher that
-- starts again from scratch (after being terminated), which must not deliver a user's
-- new events beside a lane still retrying that user's older ones. A row is written
-- before events are handed to the lane and deleted when the lane reports it drained
-- the hand-over numbered `handover` (a later hand-over keeps the row).
--
-- `dispatch_cursor` of `event_endpoints` now means: every event at or below it was
-- delivered, given up, or handed to a lane (never one still in a direct delivery).
CREATE TABLE event_lanes (
    endpoint_id text NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    -- The user's id, or 'none' for events without a user (they share one lane).
    user_key text NOT NULL,
    handover bigint NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, user_key)
);
