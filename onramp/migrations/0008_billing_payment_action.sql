-- A payment of the user's subscription that waits for the customer (Strong Customer
-- Authentication): the state `requires_action` and Stripe's hosted invoice page as the
-- next action, so GET /v1/users/{id}/subscription can say so from Postgres alone.

ALTER TABLE billing
    ADD COLUMN payment_state text NOT NULL DEFAULT 'settled'
        CHECK (payment_state IN ('settled', 'requires_action')),
    ADD COLUMN payment_action_kind text
        CHECK (payment_action_kind IN ('new_subscription', 'price_change', 'renewal')),
    ADD COLUMN payment_action_invoice_id text
        CHECK (payment_action_invoice_id ~ '^in_[A-Za-z0-9]{6,}$'),
    ADD COLUMN payment_action_url text,
    ADD CHECK ((payment_state = 'requires_action') = (payment_action_invoice_id IS NOT NULL));
