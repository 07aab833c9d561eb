"""Reconciliation's comparisons: one page of Stripe objects against the saved rows.

Pure functions (no I/O): the page step reads Stripe and Postgres, these decide what is
out of step. Objects are Stripe's JSON as dicts; findings carry ids and states only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from onramp.repositories.billing import BillingRow
from onramp.repositories.checkout_runs import StuckRun
from onramp.repositories.onboarding_tokens import StuckToken
from onramp.repositories.reconcile_findings import NewFinding
from onramp.repositories.users import SavedStripeIds
from onramp.user_ids import metadata_user_id
from workflows.contracts.reconcile import RepairAction

# A subscription in one of these has ended: an old one beside the mirror's is history.
ENDED = ("canceled", "incomplete_expired")


@dataclass(frozen=True)
class Candidate:
    """A finding and, when safe, the repair it asks for (`None`: only recorded)."""

    finding: NewFinding
    repair: RepairAction | None = None


def created_by_onramp(obj: dict[str, Any]) -> bool:
    """onramp's creates write `user_id` and `generation` (a hand-made object rarely
    carries both; one that does is still deleted only when nothing bills on it)."""
    metadata = obj.get("metadata") or {}
    return metadata_user_id(obj) is not None and "generation" in metadata


def _age(obj: dict[str, Any], now: float) -> float:
    return now - float(obj.get("created") or 0)


def _orphan(
    obj: dict[str, Any], object_type: str, user: SavedStripeIds | None, saved: str | None
) -> NewFinding:
    detail: dict[str, Any] = {"reason": "no_user" if user is None else "not_saved_id"}
    if user is not None:
        detail["saved_id"] = saved
    return NewFinding(
        kind="orphan",
        object_type=object_type,
        object_id=str(obj["id"]),
        user_id=metadata_user_id(obj),
        detail=detail,
    )


def compare_owned(
    objects: Iterable[dict[str, Any]],
    users: dict[str, SavedStripeIds],
    *,
    object_type: str,
    now: float,
    grace_seconds: float,
) -> list[Candidate]:
    """Customers or Connect accounts carrying `metadata.user_id`: each must be its
    user's saved id. A fresh one of a user still signing up without a saved id is a
    signup in flight (its ensure step saves it), not an orphan."""
    saved_of = "stripe_customer_id" if object_type == "customer" else "connect_account_id"
    found: list[Candidate] = []
    for obj in objects:
        user_id = metadata_user_id(obj)
        if user_id is None:
            continue
        user = users.get(user_id)
        saved = getattr(user, saved_of) if user is not None else None
        if saved == obj["id"]:
            continue
        young = _age(obj, now) < grace_seconds
        if user is not None and saved is None and user.status == "signing_up" and young:
            continue
        repair: RepairAction | None = None
        if object_type == "customer" and created_by_onramp(obj) and not young:
            repair = "delete_customer"
        found.append(Candidate(_orphan(obj, object_type, user, saved), repair))
    return found


def _price_of(sub: dict[str, Any]) -> str | None:
    items = (sub.get("items") or {}).get("data") or []
    if not items:
        return None
    price = items[0].get("price") or {}
    return price.get("id") if isinstance(price, dict) else price


def compare_subscriptions(
    subscriptions: Iterable[dict[str, Any]],
    owners: dict[str, SavedStripeIds],
    mirrors: dict[str, BillingRow],
    *,
    now: float,
    grace_seconds: float,
) -> list[Candidate]:
    """Subscriptions of onramp's customers (or naming a user in metadata): the mirror's
    must agree on status and price (the tier); a live one the mirror does not name is an
    orphan once past the grace (a checkout may be handing it over)."""
    found: list[Candidate] = []
    for sub in subscriptions:
        owner = owners.get(str(sub.get("customer")))
        user_id = owner.user_id if owner is not None else metadata_user_id(sub)
        if user_id is None:
            continue
        mirror = mirrors.get(user_id)
        price = _price_of(sub)
        if owner is not None and mirror is not None and mirror.stripe_subscription_id == sub["id"]:
            if sub.get("status") != mirror.status or price != mirror.stripe_price_id:
                detail = {
                    "stripe_status": sub.get("status"),
                    "mirror_status": mirror.status,
                    "stripe_price": price,
                    "mirror_price": mirror.stripe_price_id,
                    "mirror_tier": mirror.tier,
                }
                finding = NewFinding(
                    kind="drift",
                    object_type="subscription",
                    object_id=sub["id"],
                    user_id=user_id,
                    detail=detail,
                )
                found.append(Candidate(finding, "reread_subscription"))
            continue
        if sub.get("status") in ENDED or _age(sub, now) < grace_seconds:
            continue
        reason = "customer_not_saved" if owner is None else "not_mirrored"
        finding = NewFinding(
            kind="orphan",
            object_type="subscription",
            object_id=sub["id"],
            user_id=user_id,
            detail={
                "reason": reason,
                "stripe_status": sub.get("status"),
                "mirror_subscription": mirror.stripe_subscription_id if mirror else None,
            },
        )
        found.append(Candidate(finding))
    return found


def missing(object_type: str, stripe_id: str, user_id: str) -> NewFinding:
    return NewFinding(
        kind="missing",
        object_type=object_type,
        object_id=stripe_id,
        user_id=user_id,
        detail={"reason": "saved_id_not_in_stripe"},
    )


def stuck(runs: Iterable[StuckRun], tokens: Iterable[StuckToken]) -> list[Candidate]:
    """Checkouts and onboardings past their thresholds (only recorded: each needs a look)."""
    found = [
        Candidate(
            NewFinding(
                kind="stuck",
                object_type="checkout_run",
                object_id=run.run_id,
                user_id=run.user_id,
                detail={
                    "state": "confirming"
                    if run.payment_state == "confirming"
                    else "provisioning_failed",
                    "since": run.updated_at.isoformat(),
                },
            )
        )
        for run in runs
    ]
    found.extend(
        Candidate(
            NewFinding(
                kind="stuck",
                object_type="onboarding_token",
                object_id=token.token_id,
                user_id=token.user_id,
                detail={
                    "state": "in_progress",
                    "since": token.started_at.isoformat() if token.started_at else None,
                },
            )
        )
        for token in tokens
    )
    return found
