"""Render an email from its templates: subject, preheader, plain text and HTML.

Each template is three files in `templates/`: `<name>.subject`, `<name>.txt` and
`<name>.html` (which extends `_layout.html`). The first line of the text part is the
preheader, so the preview line an inbox shows and the first thing a plain-text reader
sees say the same thing. The HTML is autoescaped, the text and subject are not (they are
not HTML), and a field a template needs but was not given fails the render instead of
sending an email with a blank where a link should be.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol, get_args

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    UndefinedError,
    select_autoescape,
)
from pydantic import BaseModel, ConfigDict, Field

TemplateName = Literal["welcome", "set_password_link", "payment_failed", "downgraded_after_grace"]
TEMPLATE_NAMES: tuple[TemplateName, ...] = get_args(TemplateName)
TEMPLATES = Path(__file__).parent / "templates"

_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=["html"], default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class EmailFieldMissing(ValueError):
    """A template needs a field the caller did not give (a bug, never worth a retry)."""


class BrandedSettings(Protocol):
    """What an email needs of the settings (both processes' settings have it)."""

    platform_name: str
    brand_color: str
    dashboard_url: str | None
    onramp_public_url: str


class EmailBrand(BaseModel):
    """The platform's name, colour and URLs an email is rendered with. The defaults are
    the settings' defaults, so a preview runs with nothing configured."""

    model_config = ConfigDict(frozen=True)

    platform_name: str = Field(default="onramp", min_length=1, max_length=80)
    # Validated here too: the colour goes into inline `style` attributes.
    brand_color: str = Field(default="#4f46e5", pattern=r"^#[0-9a-fA-F]{6}$")
    public_url: str = "http://127.0.0.1:8000"
    dashboard_url: str | None = None

    @classmethod
    def from_settings(cls, settings: BrandedSettings) -> EmailBrand:
        return cls(
            platform_name=settings.platform_name,
            brand_color=settings.brand_color,
            public_url=settings.onramp_public_url,
            dashboard_url=settings.dashboard_url,
        )

    @property
    def dashboard(self) -> str:
        """Where a customer goes once setup is done: DASHBOARD_URL, else the public URL."""
        return self.dashboard_url or f"{self.public_url.rstrip('/')}/"


class RenderedEmail(BaseModel):
    """One email, rendered: what `compose` turns into a multipart message."""

    model_config = ConfigDict(frozen=True)

    template: TemplateName
    subject: str
    preheader: str
    text: str
    html: str


def render_email(
    template: TemplateName, *, brand: EmailBrand, fields: Mapping[str, str]
) -> RenderedEmail:
    """The subject, preheader, text and HTML of `template` with `brand` and `fields`
    (the activity's refs plus what it derives, such as `link`)."""
    if template not in TEMPLATE_NAMES:
        raise EmailFieldMissing(f"no email template named {template!r}")
    context: dict[str, object] = {
        **fields,
        "platform_name": brand.platform_name,
        "brand_color": brand.brand_color,
        "dashboard_url": brand.dashboard,
        "public_url": brand.public_url.rstrip("/"),
    }
    try:
        subject = _render(f"{template}.subject", context).strip()
        text = _render(f"{template}.txt", context)
        preheader = text.lstrip().split("\n", 1)[0].strip()
        html = _render(f"{template}.html", {**context, "subject": subject, "preheader": preheader})
    except UndefinedError as error:
        raise EmailFieldMissing(f"email {template!r}: {error.message}") from None
    return RenderedEmail(
        template=template, subject=subject, preheader=preheader, text=text, html=html
    )


def compose(
    rendered: RenderedEmail, *, sender: str, to: str, message_id: str | None = None
) -> EmailMessage:
    """The multipart/alternative message: plain text first, HTML preferred by clients
    that can show it."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    if message_id is not None:
        message["Message-ID"] = message_id
    message["X-Onramp-Template"] = rendered.template
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def _render(name: str, context: Mapping[str, object]) -> str:
    return _environment.get_template(name).render(context)


def _day(value: str) -> str:
    """An ISO timestamp as a person reads it ("7 December 2026, 14:05 UTC"); anything
    else as it is."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return f"{moment.day} {moment:%B %Y}"
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


_environment.filters["day"] = _day


def set_password_base_url(set_password_url: str | None, public_url: str) -> str:
    """Where set-password links point: SET_PASSWORD_URL, else the API's own page."""
    return set_password_url or f"{public_url.rstrip('/')}/v1/portal/set-password"
