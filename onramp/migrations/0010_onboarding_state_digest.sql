-- Nothing stored opens anything: the Connect `state` of Stripe's refresh and
-- return URLs is kept as sha256(state) in hex, like tokens, and the API finds a token by
-- hashing the state it is handed. The account link handed out last is kept sealed
-- (AES-256-GCM under a key derived from ONRAMP_TOKEN_SECRET, see onramp/tokens.py) with
-- its expiry, so a repeated open reuses it instead of asking Stripe for another.
ALTER TABLE onboarding_tokens
    ADD COLUMN state_sha256 text UNIQUE CHECK (state_sha256 ~ '^[0-9a-f]{64}$'),
    ADD COLUMN link_sealed bytea,
    ADD COLUMN link_expires_at timestamptz;

UPDATE onboarding_tokens
SET state_sha256 = encode(sha256(convert_to(state, 'UTF8')), 'hex')
WHERE state IS NOT NULL;

-- Dropping the column drops the CHECK that named it; the same rule on the digest:
ALTER TABLE onboarding_tokens DROP COLUMN state;
ALTER TABLE onboarding_tokens ADD CONSTRAINT onboarding_tokens_open_has_state CHECK (
    status IN ('pending', 'revoked', 'expired') OR state_sha256 IS NOT NULL
);
