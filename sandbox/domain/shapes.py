"""How the sandbox lays out a Stripe object: `id` and `object` first, then every other
field in alphabetical order, as the API shows them."""

from __future__ import annotations

import copy

from sandbox.domain.jsontypes import Obj


def stripe_object(object_id: str, kind: str, defaults: Obj, fields: Obj) -> Obj:
    """A new object from the fields every object of its kind starts with (`defaults`,
    copied) and those the call decides (`fields`, taken as they are); builders keep the
    two apart so that neither is one long literal."""
    merged = {**copy.deepcopy(defaults), **fields}
    return {"id": object_id, "object": kind, **dict(sorted(merged.items()))}
