-- Outbound events (the outbox): one row per event the platform hears about, inserted by
-- the unit of work that commits the change it reports, in the same transaction, so an
-- event exists if and only if its change does.
--
-- The id derives from the change (`evt_` + a name-based uuid's hex), so a retried
-- activity inserts nothing twice (`ON CONFLICT (id) DO NOTHING`). `sequence` orders the
-- events (per user: the index below); `data` holds ids and states only, never a token, a
-- password or card data. Rows are appended and never updated.
CREATE TABLE outbound_events (
    id text PRIMARY KEY CHECK (id ~ '^evt_[0-9a-f]{32}$'),
    type text NOT NULL,
    version int NOT NULL CHECK (version >= 1),
    user_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data jsonb NOT NULL CHECK (jsonb_typeof(data) = 'object'),
    sequence bigserial NOT NULL UNIQUE
);

CREATE INDEX outbound_events_user_sequence ON outbound_events (user_id, sequence);
