"""An error on an end-user route, answered as a page when a person asked.

The JSON error shape is built first (the one conversion of api/errors.py); for a browser
on an end-user route (`negotiation.answers_a_person`) the same status, code and message
become a page with the ways forward the error names (`ApiError.actions`), always ending
with a way back to the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

from fastapi.responses import Response
from starlette.requests import Request

from api.pages.actions import Action
from api.pages.render import dashboard_url, render_page

_TITLES = {
    400: "This request could not be used",
    404: "We could not find this page",
    409: "This cannot be done right now",
    410: "This link is no longer valid",
    422: "Some of what was sent is not valid",
    429: "Too many attempts",
    503: "Please try again in a moment",
}


def error_page(
    request: Request,
    status: int,
    code: str,
    message: str,
    actions: Sequence[Action] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    settings = request.app.state.settings
    back = Action(f"Back to {settings.platform_name}", dashboard_url(settings), primary=False)
    title = _TITLES.get(status) or _phrase(status)
    kept = {name: value for name, value in (headers or {}).items() if name == "Retry-After"}
    return render_page(
        request,
        "message.html",
        title=title,
        status=status,
        headers=kept,
        message=message,
        detail=None,
        code=code,
        actions=[*actions, back],
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Something went wrong"
