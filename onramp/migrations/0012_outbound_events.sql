-- TEMPORARY COPY for the delivery branch: the outbox branch owns this migration and its
-- final text; this copy only gives the delivery code its table. Drop it when merging.
CREATE TABLE outbound_events (
    id text PRIMARY KEY CHECK (id LIKE 'evt\_%'),
    type text NOT NULL,
    version int NOT NULL DEFAULT 1,
    user_id uuid,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    sequence bigserial UNIQUE
);
