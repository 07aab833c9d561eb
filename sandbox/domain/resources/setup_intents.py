"""SetupIntents, as a setup-mode Checkout Session makes them: one per completed session,
already `succeeded`, its payment method attached to the customer. Retrieve only."""

from __future__ import annotations

from sandbox.domain.context import Ctx
from sandbox.domain.errors import no_such
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.params import Str, apply_metadata, validate
from sandbox.domain.shapes import stripe_object

SETUP_INTENT_DEFAULTS: Obj = {
    "application": None,
    "attach_to_self": False,
    "automatic_payment_methods": None,
    "cancellation_reason": None,
    "client_secret": None,
    "description": None,
    "flow_directions": None,
    "last_setup_error": None,
    "latest_attempt": None,
    "livemode": False,
    "mandate": None,
    "next_action": None,
    "on_behalf_of": None,
    "payment_method_configuration_details": None,
    "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
    "single_use_mandate": None,
    "usage": "off_session",
}


def succeeded_setup_intent(ctx: Ctx, customer_id: str, pm: Obj, metadata: Obj | None) -> Obj:
    """A SetupIntent that saved `pm` for `customer_id` (`setup_intent.created` and
    `setup_intent.succeeded`)."""
    intent_id = new_id("seti")
    intent = stripe_object(
        intent_id,
        "setup_intent",
        SETUP_INTENT_DEFAULTS,
        {
            "client_secret": f"{intent_id}_secret_{new_id('x')[2:]}",
            "created": ctx.now,
            "customer": customer_id,
            "metadata": apply_metadata({}, metadata),
            "payment_method": pm["id"],
            "payment_method_types": [pm["type"]],
            "status": "succeeded",
        },
    )
    ctx.store.add(intent)
    ctx.emit("setup_intent.created", intent)
    ctx.emit("setup_intent.succeeded", intent)
    return intent


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {"client_secret": Str()})
    intent = ctx.store.get(ctx.path["id"], "setup_intent")
    if intent is None:
        raise no_such("setup_intent", ctx.path["id"], "intent")
    return intent
