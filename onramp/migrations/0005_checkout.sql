-- Checkout → payment → provisioning.
--
-- `checkout-<user>` writes these tables through activities; the API reads them (the
-- setup status works with the worker down) and writes only a password (one transaction
-- with the token and `password_state`). Tokens are stored as sha256(token), never clear.

-- One row per run of `checkout-<user>`, numbered per user (`attempt`).
CREATE TABLE checkout_runs (
    run_id text PRIMARY KEY,
    workflow_id text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempt integer NOT NULL CHECK (attempt >= 1),
    tier text NOT NULL CHECK (tier IN ('pro', 'enterprise')),
    billing_cycle text NOT NULL CHECK (billing_cycle IN ('monthly', 'yearly')),
    -- The run's current session (a plan change replaces it).
    checkout_session_id text NOT NULL UNIQUE CHECK (checkout_session_id ~ '^cs_[A-Za-z0-9_]+$'),
    session_url text,
    session_status text NOT NULL DEFAULT 'open'
        CHECK (session_status IN ('open', 'complete', 'expired')),
    payment_state text NOT NULL DEFAULT 'unpaid'
        CHECK (payment_state IN ('unpaid', 'confirming', 'paid')),
    payment_outcome text CHECK (payment_outcome IN ('expired', 'failed')),
    stripe_subscription_id text CHECK (stripe_subscription_id ~ '^sub_[A-Za-z0-9]+$'),
    provisioning_state text NOT NULL DEFAULT 'not_started'
        CHECK (provisioning_state IN ('not_started', 'queued', 'running', 'completed', 'failed')),
    provisioning_error text,
    password_state text NOT NULL DEFAULT 'not_sent'
        CHECK (password_state IN ('not_sent', 'sent', 'set')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    paid_at timestamptz,
    provisioned_at timestamptz,
    email_sent_at timestamptz,
    password_set_at timestamptz,
    UNIQUE (user_id, attempt)
);

-- The user's portal/workspace: one per user; `run_id` says which run made it, so a
-- compensation removes only what its own run created.
CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    run_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Set-password tokens: sha256(token) only; the token is derived from the id.
CREATE TABLE password_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    run_id text NOT NULL REFERENCES checkout_runs (run_id) ON DELETE CASCADE,
    purpose text NOT NULL,
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    state text NOT NULL DEFAULT 'issued' CHECK (state IN ('issued', 'used', 'revoked')),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at timestamptz,
    CHECK ((state = 'used') = (used_at IS NOT NULL))
);
CREATE INDEX password_tokens_user ON password_tokens (user_id);

-- argon2id hash (argon2-cffi's encoded form); NULL until the user sets a password.
ALTER TABLE users ADD COLUMN password_hash text CHECK (password_hash LIKE '$argon2id$%');
ALTER TABLE users ADD COLUMN password_set_at timestamptz;
