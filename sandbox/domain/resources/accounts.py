"""Connect accounts (Express and controller-based) and account links.

An account starts with requirements due and charges/payouts disabled; onboarding on the
hosted page (or the control API) completes it and emits `account.updated`, which goes to
Connect endpoints only because it carries `account`.

Capabilities, as Stripe documents them (docs.stripe.com/connect/account-capabilities):
each requested capability starts `inactive` while requirements are due, is `pending`
while Stripe verifies what was submitted, and `active` once verified; the account's
flags follow them — `charges_enabled` from `card_payments`, `payouts_enabled` from
`transfers` — and when both are requested, either one inactive disables both. An
account created without capabilities gets `card_payments` and `transfers` (what Stripe
requests for an account whose requirements Stripe collects); one whose platform
collects requirements (`controller[requirement_collection]=application`, or
`type=custom`) must request capabilities, as the API reference says.

`type` and `controller` are alternatives: Stripe refuses both together. A deleted
account, or one this platform never had, answers 403 `account_invalid` on retrieve,
update and delete: the key has no access to it (Stripe does not say which).
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, bad_param, invalid, no_such
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, list_object, paginate
from sandbox.domain.params import (
    Bool,
    Created,
    Enum,
    Free,
    Hash,
    Metadata,
    Spec,
    Str,
    apply_metadata,
    validate,
)
from sandbox.domain.shapes import stripe_object

INITIAL_DUE = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]

EU = {"AT", "BE", "DE", "ES", "FI", "FR", "IE", "IT", "LU", "NL", "PT"}
CURRENCY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "JP": "jpy", "CH": "chf"}

FIELDS = {
    "email": Str(),
    "metadata": Metadata(),
    "business_type": Enum("company", "government_entity", "individual", "non_profit"),
    "business_profile": Free(),
    "settings": Free(),
    "tos_acceptance": Free(),
    "individual": Free(),
    "company": Free(),
    "default_currency": Str(),
    "external_account": Free(),
}


def _known_capabilities() -> frozenset[str]:
    # The capability names of the `stripe` library's generated create parameters
    # (Stripe's own description of its API).
    from stripe.params import AccountCreateParamsCapabilities

    return frozenset(AccountCreateParamsCapabilities.__annotations__)


class Capabilities(Spec):
    """`capabilities[<name>][requested]=true|false` for the names Stripe knows."""

    def check(self, value: Any, param: str) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise bad_param(f"Invalid object: {param}", param)
        known = _known_capabilities()
        out: dict[str, bool] = {}
        for name, spec in value.items():
            if name not in known:
                raise bad_param(f"Received unknown parameter: {param}[{name}]", f"{param}[{name}]")
            checked = Hash({"requested": Bool()}).check(spec, f"{param}[{name}]")
            out[name] = bool((checked or {}).get("requested"))
        return out


DEFAULT_CAPABILITIES = ("card_payments", "transfers")
# The account flag Stripe derives from each capability.
CAPABILITY_FLAGS = {"card_payments": "charges_enabled", "transfers": "payouts_enabled"}

CREATE_FIELDS = {
    **FIELDS,
    "type": Enum("custom", "express", "standard"),
    "country": Str(2),
    "capabilities": Capabilities(),
    "controller": Hash(
        {
            "fees": Hash({"payer": Enum("account", "application")}),
            "losses": Hash({"payments": Enum("application", "stripe")}),
            "requirement_collection": Enum("application", "stripe"),
            "stripe_dashboard": Hash({"type": Enum("express", "full", "none")}),
        }
    ),
}


def _requirements(due: list[str], disabled_reason: str | None) -> Obj:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


def get_account(ctx: Ctx, account_id: str, param: str = "id") -> Obj:
    account = ctx.store.get(account_id, "account")
    if account is None:
        raise no_such("account", account_id, param)
    return account


def no_access(account_id: str) -> StripeError:
    """What Stripe answers for an account the key cannot reach (deleted or foreign)."""
    return StripeError(
        403,
        "invalid_request_error",
        f"The provided key 'sk_test_********' does not have access to account "
        f"'{account_id}' (or that account does not exist). Application access may have "
        "been revoked.",
        code="account_invalid",
    )


def accessible_account(ctx: Ctx, account_id: str) -> Obj:
    account = ctx.store.get(account_id, "account")
    if account is None:
        raise no_access(account_id)
    return account


def derive_flags(account: Obj) -> None:
    """`charges_enabled` / `payouts_enabled` from the capabilities they depend on."""
    capabilities: dict[str, str] = account["capabilities"]
    linked = [name for name in CAPABILITY_FLAGS if name in capabilities]
    if len(linked) == 2 and "inactive" in (capabilities[name] for name in linked):
        # Stripe: with both requested, either one inactive disables both.
        for name in linked:
            capabilities[name] = "inactive"
    for name, flag in CAPABILITY_FLAGS.items():
        account[flag] = capabilities.get(name) == "active" and bool(account["details_submitted"])


def _controller(kind: str, given: Obj | None) -> Obj:
    dashboard = {"express": "express", "standard": "full", "custom": "none"}[kind]
    controller: Obj = {
        "fees": {"payer": "application" if kind != "standard" else "account"},
        "is_controller": True,
        "losses": {"payments": "application" if kind != "standard" else "stripe"},
        "requirement_collection": "stripe",
        "stripe_dashboard": {"type": dashboard},
        "type": "application",
    }
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(controller.get(key), dict):
            controller[key] = {**controller[key], **{k: v for k, v in value.items() if v}}
        elif value is not None:
            controller[key] = value
    return controller


ACCOUNT_DEFAULTS: Obj = {
    "charges_enabled": False,
    "details_submitted": False,
    "future_requirements": _requirements([], None),
    "payouts_enabled": False,
    "requirements": _requirements(INITIAL_DUE, "requirements.past_due"),
    "settings": {
        "bacs_debit_payments": {"display_name": None, "service_user_number": None},
        "branding": {
            "icon": None,
            "logo": None,
            "primary_color": None,
            "secondary_color": None,
        },
        "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
        "card_payments": {
            "decline_on": {"avs_failure": False, "cvc_failure": False},
            "statement_descriptor_prefix": None,
        },
        "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
        "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
        "payments": {"statement_descriptor": None},
        "payouts": {
            "debit_negative_balances": True,
            "schedule": {"delay_days": 2, "interval": "daily"},
            "statement_descriptor": None,
        },
        "sepa_debit_payments": {},
    },
    "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
}
"""The fields of a new account that no parameter decides."""

BUSINESS_PROFILE: Obj = dict.fromkeys(
    (
        "annual_revenue",
        "estimated_worker_count",
        "mcc",
        "minority_owned_business_designation",
        "name",
        "product_description",
        "support_address",
        "support_email",
        "support_phone",
        "support_url",
        "url",
    )
)


def _kind_of(p: Obj) -> str:
    """The legacy account type, given or read from the `controller` properties."""
    controller_in = p.get("controller")
    kind = p.get("type")
    if kind is not None and controller_in is not None:
        raise invalid(
            "You cannot specify both `type` and `controller`: describe the account with "
            "`controller` properties instead of a type.",
            "type",
        )
    if kind is None:
        dashboard = ((controller_in or {}).get("stripe_dashboard") or {}).get("type")
        kind = {"express": "express", "none": "custom"}.get(dashboard or "", "standard")
    return str(kind)


def _requested(p: Obj, kind: str) -> dict[str, str]:
    """The requested capabilities, each `inactive` until onboarding."""
    capabilities: dict[str, bool] = p.get("capabilities") or {}
    requested = {name: "inactive" for name, wanted in capabilities.items() if wanted}
    platform_collects = kind == "custom" or (
        (p.get("controller") or {}).get("requirement_collection") == "application"
    )
    if not requested and platform_collects:
        raise invalid(
            "You must request at least one capability for accounts whose requirements "
            "the platform collects.",
            "capabilities",
        )
    if not requested:
        requested = dict.fromkeys(DEFAULT_CAPABILITIES, "inactive")
    return requested


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS)
    kind = _kind_of(p)
    country = (p.get("country") or "US").upper()
    account_id = new_id("acct")
    requested = _requested(p, kind)
    fields: Obj = {
        "business_profile": {**BUSINESS_PROFILE, **(p.get("business_profile") or {})},
        "business_type": p.get("business_type"),
        "capabilities": requested,
        "controller": _controller(kind, p.get("controller")),
        "country": country,
        "created": ctx.now,
        "default_currency": p.get("default_currency")
        or ("eur" if country in EU else CURRENCY.get(country, "usd")),
        "email": p.get("email"),
        "external_accounts": list_object([], f"/v1/accounts/{account_id}/external_accounts"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "type": kind,
    }
    account = stripe_object(account_id, "account", ACCOUNT_DEFAULTS, fields)
    ctx.store.add(account)
    ctx.created_id = account_id
    return account


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return accessible_account(ctx, ctx.path["id"])


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, FIELDS)
    account = accessible_account(ctx, ctx.path["id"])
    before = copy.deepcopy(account)
    for key in ("email", "business_type", "default_currency"):
        if key in p:
            account[key] = p[key]
    if isinstance(p.get("business_profile"), dict):
        account["business_profile"].update(p["business_profile"])
    account["metadata"] = apply_metadata(account["metadata"], p.get("metadata"))
    emit_updated(ctx, account, before)
    return account


def delete(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    account = accessible_account(ctx, ctx.path["id"])
    stub = ctx.store.delete(account["id"])
    assert stub is not None
    return stub


def list_handler(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {"created": Created()}, listing=True)
    items = (
        a
        for a in ctx.store.newest_first("account")
        if created_matches(a["created"], p.get("created"))
    )
    return paginate(items, p, "/v1/accounts")


def emit_updated(ctx: Ctx, account: Obj, before: Obj) -> None:
    """`account.updated` about the connected account (delivered to Connect endpoints)."""
    changed = previous_attributes(before, account)
    if changed:
        ctx.emit("account.updated", account, previous=changed, account=account["id"])


def complete_onboarding(ctx: Ctx, account: Obj, capability_status: str = "active") -> Obj:
    """What finishing the hosted onboarding does: every requested capability becomes
    `active` (or stays `pending` under review when asked), and the flags follow."""
    before = copy.deepcopy(account)
    account["details_submitted"] = True
    account["business_type"] = account["business_type"] or "individual"
    account["requirements"] = _requirements([], None)
    account["capabilities"] = dict.fromkeys(account["capabilities"], capability_status)
    derive_flags(account)
    account["tos_acceptance"] = {"date": ctx.now, "ip": "127.0.0.1", "user_agent": "sandbox"}
    emit_updated(ctx, account, before)
    return account


def simulate_update(ctx: Ctx, account: Obj, changes: Obj) -> Obj:
    """Later changes Stripe may make (charges disabled, new requirements...)."""
    before = copy.deepcopy(account)
    for key in ("charges_enabled", "payouts_enabled", "details_submitted"):
        if key in changes:
            account[key] = bool(changes[key])
    for key in ("requirements", "future_requirements"):
        if isinstance(changes.get(key), dict):
            merged = {**account[key], **changes[key]}
            account[key] = merged
    if isinstance(changes.get("capabilities"), dict):
        account["capabilities"] = {**account["capabilities"], **changes["capabilities"]}
        derive_flags(account)
        for key in ("charges_enabled", "payouts_enabled"):
            if key in changes:
                account[key] = bool(changes[key])
    if isinstance(changes.get("metadata"), dict):
        account["metadata"] = apply_metadata(account["metadata"], changes["metadata"])
    emit_updated(ctx, account, before)
    return account


# account links
