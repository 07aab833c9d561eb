"""Render a page from `templates/` with the platform's brand.

Autoescaping is on for every template and undefined names fail the render, so a missing
value is a bug found by a test, never an empty string a person reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request

from api.edge import html_policy
from api.pages.actions import Action as Action  # re-exported: pages build actions

TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


class BrandedSettings(Protocol):
    """What a page or an email needs of the settings (`BrandSettings` and the public URL:
    both processes' settings have them)."""

    platform_name: str
    brand_color: str
    dashboard_url: str | None
    onramp_public_url: str


def dashboard_url(settings: BrandedSettings) -> str:
    """Where a customer goes once setup is done: DASHBOARD_URL, else the public URL."""
    return settings.dashboard_url or f"{settings.onramp_public_url}/"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def render_page(
    request: Request,
    template: str,
    *,
    title: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    script: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page `template` (extending `base.html`), with the brand from the app's
    settings. `script` names a file of `static/` the page loads (no inline script)."""
    settings: BrandedSettings = request.app.state.settings
    html = _environment.get_template(template).render(
        title=title,
        platform_name=settings.platform_name,
        dashboard_url=dashboard_url(settings),
        script=script,
        **context,
    )
    response_headers = {
        "Content-Security-Policy": html_policy(form_targets=[_origin(dashboard_url(settings))]),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        **(headers or {}),
    }
    return HTMLResponse(html, status_code=status, headers=response_headers)
