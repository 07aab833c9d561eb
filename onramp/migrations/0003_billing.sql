-- Subscriptions, invoices, tier audit and the email outbox.
--
-- `subscription-<user>` is the only writer of these tables (and of users.tier): every
-- tier change writes `billing.tier` and `users.tier` in one transaction.
-- "No Stripe object" is NULL; Stripe ids are UNIQUE where set and a CHECK refuses any
-- value that is not shaped like a Stripe id, so a sentinel cannot be stored.

CREATE TABLE billing (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- The tier: source of truth (users.tier is the auth cache, written in the same
    -- transaction).
    tier text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    -- Stripe's subscription status as last re-read, or 'none' without a subscription.
    status text NOT NULL DEFAULT 'none' CHECK (status IN (
        'none', 'incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due',
        'canceled', 'unpaid', 'paused'
    )),
    billing_cycle text CHECK (billing_cycle IN ('monthly', 'yearly')),
    stripe_subscription_id text UNIQUE
        CHECK (stripe_subscription_id ~ '^sub_[A-Za-z0-9]{6,}$'),
    stripe_price_id text CHECK (stripe_price_id ~ '^price_[A-Za-z0-9]{6,}$'),
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    current_period_end timestamptz,
    -- Set while past_due: the tier holds until then, then drops to free.
    grace_until timestamptz,
    admin_override_tier text CHECK (admin_override_tier IN ('free', 'pro', 'enterprise')),
    admin_override_reason text,
    admin_override_by text,
    admin_override_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((admin_override_tier IS NULL) = (admin_override_at IS NULL)),
    CHECK (stripe_subscription_id IS NOT NULL OR status = 'none'),
    CHECK (stripe_subscription_id IS NOT NULL OR NOT cancel_at_period_end)
);

-- The invoice mirror: what GET /v1/users/{id}/invoices lists (the API never asks Stripe).
CREATE TABLE invoices (
    stripe_invoice_id text PRIMARY KEY CHECK (stripe_invoice_id ~ '^in_[A-Za-z0-9]{6,}$'),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stripe_subscription_id text CHECK (stripe_subscription_id ~ '^sub_[A-Za-z0-9]{6,}$'),
    number text,
    status text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'uncollectible', 'void')),
    currency text NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    amount_due bigint NOT NULL DEFAULT 0,
    amount_paid bigint NOT NULL DEFAULT 0,
    amount_remaining bigint NOT NULL DEFAULT 0,
    total bigint NOT NULL DEFAULT 0,
    period_start timestamptz,
    period_end timestamptz,
    hosted_invoice_url text,
    invoice_pdf text,
    created timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_user_created ON invoices (user_id, created DESC, stripe_invoice_id DESC);

-- Admin tier changes: who (the API key's name), from, to, reason, when.
CREATE TABLE tier_audit (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    who text NOT NULL CHECK (length(who) BETWEEN 1 AND 200),
    from_tier text NOT NULL CHECK (from_tier IN ('free', 'pro', 'enterprise')),
    to_tier text NOT NULL CHECK (to_tier IN ('free', 'pro', 'enterprise')),
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tier_audit_user ON tier_audit (user_id, created_at);

-- Every email the service sends: template and ids only (never a token or a link). The
-- Message-ID derives from the id, so a retried send is recognisable.
CREATE TABLE email_outbox (
    id uuid PRIMARY KEY,
    template text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refs jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(refs) = 'object'),
    message_id text NOT NULL UNIQUE,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent')),
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz,
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX email_outbox_user ON email_outbox (user_id, created_at);

-- Legacy cleanup for platforms importing data from the system this replaces, which stored
-- the sentinel `admin_override_<id>` where NULL means "no Stripe customer". The CHECK on
-- users.stripe_customer_id already refuses such values for new writes; imported rows
-- that carry one become NULL here. Harmless (no rows) on a fresh database.
UPDATE users SET stripe_customer_id = NULL WHERE stripe_customer_id LIKE 'admin_override_%';
