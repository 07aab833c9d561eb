-- Event endpoints: where onramp delivers its outbound events (Standard Webhooks), and
-- every delivery attempt made to them.
--
-- The signing secret is never stored in the clear: `secret_sealed` is AES-256-GCM under
-- a key derived from ONRAMP_TOKEN_SECRET, bound to the endpoint's id. After a rotation
-- the previous secret keeps signing beside the new one until `previous_secret_until`,
-- so receivers can switch without dropping a delivery.
CREATE TABLE event_endpoints (
    id text PRIMARY KEY CHECK (id ~ '^ep_[0-9a-f]{32}$'),
    url text NOT NULL CHECK (url ~ '^https?://'),
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
    description text NOT NULL DEFAULT '',
    secret_sealed bytea NOT NULL,
    previous_secret_sealed bytea,
    previous_secret_until timestamptz,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'failing')),
    -- The dispatcher's position in `outbound_events.sequence`: everything at or below it
    -- has been handed to the endpoint's per-user delivery workflows.
    dispatch_cursor bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret_sealed IS NULL) = (previous_secret_until IS NULL))
);

-- One row per attempt: status, response code, latency, error, and when the next attempt
-- is due (NULL once delivered or given up).
CREATE TABLE event_deliveries (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    endpoint_id text NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    user_id uuid,
    attempt int NOT NULL CHECK (attempt >= 1),
    replay boolean NOT NULL DEFAULT false,
    status text NOT NULL CHECK (status IN ('delivered', 'failed', 'abandoned')),
    response_code int,
    latency_ms int,
    error text,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz
);

CREATE INDEX event_deliveries_endpoint_idx ON event_deliveries (endpoint_id, id DESC);
CREATE INDEX event_deliveries_event_idx ON event_deliveries (event_id, endpoint_id);
