-- Connect onboarding: tokenized links and the mirror of the account's flags.

-- Tokens are never stored in the clear: token_hash = sha256(token) in hex. `state` (the
-- value in Stripe's refresh/return URLs) is written in the same statement that first
-- moves a token to in_progress, and kept for the token's life.
CREATE TABLE onboarding_tokens (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose text NOT NULL DEFAULT 'connect_onboarding',
    token_hash text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in_progress', 'completed', 'expired', 'revoked')),
    state text UNIQUE,
    expires_at timestamptz NOT NULL,
    started_at timestamptz,
    returned_at timestamptz,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'pending' OR status = 'revoked' OR status = 'expired' OR state IS NOT NULL)
);

CREATE INDEX onboarding_tokens_user_idx ON onboarding_tokens (user_id, created_at DESC);

-- The Connect account's flags as last re-read from Stripe. The account id itself lives
-- on the user row only (one home per Stripe id); this table joins to it.
CREATE TABLE connect_account_status (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    details_submitted boolean NOT NULL DEFAULT false,
    charges_enabled boolean NOT NULL DEFAULT false,
    payouts_enabled boolean NOT NULL DEFAULT false,
    requirements_due text[] NOT NULL DEFAULT '{}',
    disabled_reason text,
    onboarding_completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
