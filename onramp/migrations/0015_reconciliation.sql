-- Reconciliation: each run of `reconcile` and what it found.
--
-- Findings hold ids and states only (never an email, a name or a secret). One open
-- finding per (kind, object): a later run that sees it again moves `last_seen_at`; a
-- complete run that no longer sees it sets `resolved_at`. A repair (a re-read signal, a
-- deleted orphan customer) is noted on the finding, which stays open until a run
-- confirms the object is in step.
CREATE TABLE reconcile_runs (
    id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 200),
    workflow_id text NOT NULL,
    dry_run boolean NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    -- complete: every phase was read to its end; incomplete: the budget ran out first
    -- (nothing is resolved then).
    outcome text CHECK (outcome IN ('complete', 'incomplete')),
    -- The phase and Stripe page cursor reached (resumable across continue-as-new).
    phase text NOT NULL DEFAULT 'customers',
    cursor text,
    objects_checked integer NOT NULL DEFAULT 0 CHECK (objects_checked >= 0),
    stripe_requests integer NOT NULL DEFAULT 0 CHECK (stripe_requests >= 0),
    findings integer NOT NULL DEFAULT 0 CHECK (findings >= 0),
    repairs integer NOT NULL DEFAULT 0 CHECK (repairs >= 0),
    CHECK ((finished_at IS NULL) = (outcome IS NULL))
);
CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at DESC);

CREATE TABLE reconcile_findings (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('orphan', 'missing', 'drift', 'stuck')),
    object_type text NOT NULL CHECK (object_type IN (
        'customer', 'account', 'subscription', 'checkout_run', 'onboarding_token'
    )),
    object_id text NOT NULL CHECK (length(object_id) BETWEEN 1 AND 255),
    user_id uuid,
    -- Ids and states only: e.g. {"stripe_status": "past_due", "mirror_status": "active"}.
    detail jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object'),
    first_run_id text NOT NULL REFERENCES reconcile_runs (id),
    last_run_id text NOT NULL REFERENCES reconcile_runs (id),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    repaired_at timestamptz,
    repair_note text CHECK (length(repair_note) <= 500),
    resolved_at timestamptz,
    CHECK ((repaired_at IS NULL) = (repair_note IS NULL))
);
CREATE UNIQUE INDEX reconcile_findings_open
    ON reconcile_findings (kind, object_type, object_id) WHERE resolved_at IS NULL;
CREATE INDEX reconcile_findings_kind_open
    ON reconcile_findings (kind, last_seen_at DESC) WHERE resolved_at IS NULL;

-- The Stripe ids a run has listed, so the saved ids it did not list can be looked up one
-- by one (missing) without keeping every id in workflow history. Cleared when the run
-- finishes.
CREATE TABLE reconcile_seen (
    run_id text NOT NULL REFERENCES reconcile_runs (id) ON DELETE CASCADE,
    stripe_id text NOT NULL,
    PRIMARY KEY (run_id, stripe_id)
);
