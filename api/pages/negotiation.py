"""HTML for people, JSON for programs: which one a request asked for.

A browser's `Accept` names `text/html` first (`text/html,application/xhtml+xml,…,*/*;q=0.8`);
an API client names `application/json`, or nothing (`*/*`), and gets the JSON it always
got. So a request gets HTML only when it names `text/html` (or XHTML) with a quality at
least that of `application/json`; `*/*` alone counts for JSON.
"""

from __future__ import annotations

from starlette.requests import Request

# The routes people open: links in emails, Stripe's redirects, the billing page.
# Everything else is an API for programs and always answers JSON.
END_USER_PREFIXES = (
    "/v1/portal/",
    "/v1/onboard",
    "/v1/connect/",
    "/v1/checkout/return",
    "/v1/checkout/status-page",
    "/v1/billing",
)


def _qualities(accept: str) -> dict[str, float]:
    qualities: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            qualities[media.lower()] = max(quality, qualities.get(media.lower(), 0.0))
    return qualities


def wants_html(request: Request) -> bool:
    """Whether the request asked for a page rather than JSON."""
    qualities = _qualities(request.headers.get("accept", ""))
    html = max(qualities.get("text/html", 0.0), qualities.get("application/xhtml+xml", 0.0))
    return html > 0 and html >= qualities.get("application/json", 0.0)


def is_end_user_path(path: str) -> bool:
    return path.startswith(END_USER_PREFIXES)


def answers_a_person(request: Request) -> bool:
    """An end-user route opened by a browser: errors are pages, not JSON."""
    return is_end_user_path(request.url.path) and wants_html(request)
