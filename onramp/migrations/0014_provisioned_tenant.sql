-- The platform's tenant made by the provisioning hook (`provision_customer` on
-- PROVISIONING_TASK_QUEUE): one row per checkout run that provisioned through the hook,
-- shown in the setup status. Without the hook the table stays empty.
CREATE TABLE provisioned_tenants (
    run_id text PRIMARY KEY REFERENCES checkout_runs (run_id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 200),
    -- Where the customer goes when they are done (the status page's dashboard link).
    dashboard_url text CHECK (dashboard_url ~ '^https?://[^\s]+$' AND length(dashboard_url) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provisioned_tenants_user ON provisioned_tenants (user_id);
