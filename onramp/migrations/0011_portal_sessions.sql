-- Portal sessions: the single-use, short-lived link a platform hands its user to open
-- the hosted billing page, and the browser session that opening it starts.
--
-- Nothing stored opens anything: the link's token and the browser's cookie are kept as
-- sha256 (hex) only. Opening the link sets `used_at` and the cookie's digest in one
-- statement, so a second open (or a copy of the link) finds nothing to use.
CREATE TABLE portal_sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    return_url text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    browser_sha256 text UNIQUE CHECK (browser_sha256 ~ '^[0-9a-f]{64}$'),
    browser_expires_at timestamptz,
    CHECK ((used_at IS NULL) = (browser_sha256 IS NULL)),
    CHECK ((browser_sha256 IS NULL) = (browser_expires_at IS NULL))
);

CREATE INDEX portal_sessions_user_idx ON portal_sessions (user_id, created_at DESC);
