"""Every side effect: one step per activity, idempotent, with a stable key."""
