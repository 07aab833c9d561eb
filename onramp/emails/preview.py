"""`onramp email preview TEMPLATE [--out DIR]` (or `--all`): write each email as
`<template>.html`, `<template>.txt` and `<template>.eml`, with sample fields and the
brand read from the environment, and print the paths.

It needs no database, no Temporal and no Stripe key: every setting it reads has a
default, so a designer can preview with nothing configured.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from onramp.emails.render import (
    TEMPLATE_NAMES,
    EmailBrand,
    TemplateName,
    compose,
    render_email,
    set_password_base_url,
)
from onramp.passwords import set_password_link
from onramp.settings import BrandSettings, EmailSettings, PublicUrlSettings, load_settings

DEFAULT_OUT = Path(".onramp") / "email-preview"
# Only for the sample link: a preview's link is not meant to work.
_SAMPLE_SECRET = "email-preview-not-a-real-secret-0123456789"  # noqa: S105
_SAMPLE_TOKEN_ID = "00000000-0000-4000-8000-000000000000"  # noqa: S105 - an id
SAMPLE_RECIPIENT = "customer@example.com"


class PreviewSettings(BrandSettings, PublicUrlSettings, EmailSettings):
    """What a preview reads of the environment (all optional)."""


def sample_fields(
    template: TemplateName, *, set_password_url: str, now: datetime
) -> dict[str, str]:
    """The fields the activity would hand the template, with sample values."""
    fields = {"user_id": "00000000-0000-4000-8000-000000000001"}
    if template in ("welcome", "set_password_link"):
        fields["link"] = set_password_link(_SAMPLE_SECRET, set_password_url, _SAMPLE_TOKEN_ID)
    if template in ("payment_failed", "downgraded_after_grace"):
        fields["subscription_id"] = "sub_sample"
    if template == "payment_failed":
        fields["grace_until"] = (now + timedelta(days=7)).replace(microsecond=0).isoformat()
    return fields


def write_preview(template: TemplateName, out: Path, settings: PreviewSettings) -> list[Path]:
    """Render `template` and write its three files into `out`; returns their paths."""
    brand = EmailBrand.from_settings(settings)
    base = set_password_base_url(settings.set_password_url, settings.onramp_public_url)
    fields = sample_fields(template, set_password_url=base, now=datetime.now(UTC))
    rendered = render_email(template, brand=brand, fields=fields)
    message = compose(
        rendered,
        sender=settings.email_from,
        to=SAMPLE_RECIPIENT,
        message_id=f"<preview-{template}@onramp.local>",
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{template}.html", out / f"{template}.txt", out / f"{template}.eml"]
    paths[0].write_text(rendered.html, encoding="utf-8")
    paths[1].write_text(rendered.text, encoding="utf-8")
    paths[2].write_bytes(bytes(message))
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onramp email preview",
        description="Write emails with sample fields as .html, .txt and .eml files.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("template", nargs="?", choices=TEMPLATE_NAMES, help="one template")
    which.add_argument("--all", action="store_true", help="every template")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"directory (default: {DEFAULT_OUT})"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings(PreviewSettings)
    templates: tuple[TemplateName, ...] = TEMPLATE_NAMES if args.all else (args.template,)
    for template in templates:
        for path in write_preview(template, args.out, settings):
            print(path)  # noqa: T201 - the command's output


if __name__ == "__main__":
    main()
