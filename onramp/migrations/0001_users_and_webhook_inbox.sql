-- Users, the Stripe webhook inbox and the API's idempotency records.
--
-- "No Stripe object" is NULL, never a sentinel: each Stripe id column is UNIQUE where
-- set and a CHECK refuses anything that is not shaped like a Stripe id. A user's
-- customer and Connect account ids live here and nowhere else (other tables join).

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    username text NOT NULL CHECK (length(username) BETWEEN 1 AND 64),
    status text NOT NULL DEFAULT 'signing_up' CHECK (status IN ('signing_up', 'active')),
    wants_payouts boolean NOT NULL DEFAULT false,
    stripe_customer_id text UNIQUE
        CHECK (stripe_customer_id ~ '^cus_[A-Za-z0-9]{6,}$'),
    -- Bumped when a created customer had to be deleted, so the next create uses a new
    -- Stripe idempotency key and can never be answered with the deleted object.
    stripe_customer_generation integer NOT NULL DEFAULT 0 CHECK (stripe_customer_generation >= 0),
    connect_account_id text UNIQUE
        CHECK (connect_account_id ~ '^acct_[A-Za-z0-9]{6,}$'),
    connect_account_generation integer NOT NULL DEFAULT 0 CHECK (connect_account_generation >= 0),
    -- The auth cache of the tier; the billing table is the source of truth and every
    -- change writes both in one transaction.
    tier text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every Stripe event is stored before it is dispatched, so nothing Stripe was told
-- "200" about can be lost, and a duplicate delivery is recognised by its id.
CREATE TABLE webhook_events (
    event_id text PRIMARY KEY CHECK (event_id ~ '^evt_[A-Za-z0-9_]+$'),
    type text NOT NULL,
    livemode boolean NOT NULL,
    account text CHECK (account ~ '^acct_[A-Za-z0-9]+$'),
    api_version text,
    created timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    raw_body bytea NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'dispatched', 'ignored', 'failed', 'orphaned')),
    status_reason text,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    user_id uuid,
    target_workflow_id text,
    dispatched_at timestamptz
);
CREATE INDEX webhook_events_status_received ON webhook_events (status, received_at);
CREATE INDEX webhook_events_received ON webhook_events (received_at);

-- Idempotency-Key records of the API's own POST/PUT routes (24 h). Temporal's update-id
-- deduplication ends at continue-as-new, so it cannot be the only guard.
CREATE TABLE api_idempotency_keys (
    client_name text NOT NULL,
    idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    route text NOT NULL,
    request_hash text NOT NULL,
    state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed')),
    response_status integer,
    response_body jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    PRIMARY KEY (client_name, idempotency_key)
);
CREATE INDEX api_idempotency_keys_expires ON api_idempotency_keys (expires_at);
