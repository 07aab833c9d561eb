"""Account links: single-use URLs to the hosted Connect onboarding page."""

from __future__ import annotations

from sandbox.domain.context import Ctx
from sandbox.domain.errors import invalid
from sandbox.domain.ids import token
from sandbox.domain.jsontypes import Obj
from sandbox.domain.params import Enum, Free, Str, validate
from sandbox.domain.resources.accounts import get_account

LINK_SECONDS = 300


def create_link(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "account": Str(),
            "type": Enum("account_onboarding", "account_update"),
            "refresh_url": Str(),
            "return_url": Str(),
            "collect": Enum("currently_due", "eventually_due"),
            "collection_options": Free(),
        },
        required=["account", "type"],
    )
    account = get_account(ctx, p["account"], "account")
    if p["type"] == "account_update" and account["type"] != "custom":
        raise invalid(
            "You cannot create `account_update` type Account Links for accounts that are not "
            "of type custom.",
            "type",
        )
    link_token = token(32)
    link = {
        "object": "account_link",
        "created": ctx.now,
        "expires_at": ctx.now + LINK_SECONDS,
        "url": f"{ctx.url_base}/_sandbox/pages/connect/{link_token}",
    }
    ctx.store.links[link_token] = {
        "account": account["id"],
        "type": p["type"],
        "refresh_url": p.get("refresh_url"),
        "return_url": p.get("return_url"),
        "expires_at": link["expires_at"],
        "visited": False,
        "used": False,
    }
    ctx.store.dirty = True
    return link
