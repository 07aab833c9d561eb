"""Every email renders from its templates as plain text and HTML, with the brand, the
preheader and its link in both parts; the preview command writes them as files."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from pydantic import ValidationError

from onramp.emails import (
    TEMPLATE_NAMES,
    EmailBrand,
    EmailFieldMissing,
    TemplateName,
    compose,
    render_email,
    set_password_base_url,
)
from onramp.emails.preview import sample_fields

NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
BRAND = EmailBrand(
    platform_name="Acme <Tools> & Co",
    brand_color="#0b5cad",
    public_url="https://api.acme.test",
    dashboard_url="https://app.acme.test/home?from=email&x=1",
)
SET_PASSWORD = set_password_base_url(None, BRAND.public_url)


def _link(fields: dict[str, str]) -> str:
    """The one way forward each email offers: its set-password link, else the dashboard."""
    return fields.get("link", BRAND.dashboard)


def _html_escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_each_template_renders_text_and_html_with_its_link(template: TemplateName) -> None:
    fields = sample_fields(template, set_password_url=SET_PASSWORD, now=NOW)
    rendered = render_email(template, brand=BRAND, fields=fields)
    link = _link(fields)

    for part in (rendered.subject, rendered.text, rendered.html):
        assert part.strip()
        assert "{{" not in part and "{%" not in part and "}}" not in part
    assert link in rendered.text.splitlines()  # alone on its line: copyable, clickable
    assert f'href="{_html_escaped(link)}"' in rendered.html
    assert f">{_html_escaped(link)}</a>" in rendered.html  # the address as text too
    # The preheader: the text part's first line, hidden at the top of the HTML.
    assert rendered.preheader == rendered.text.splitlines()[0]
    assert len(rendered.preheader) > 20
    assert f'aria-hidden="true">{_html_escaped(rendered.preheader)}</div>' in rendered.html
    # Autoescaped in HTML, as written in the text part.
    assert "Acme &lt;Tools&gt; &amp; Co" in rendered.html and "<Tools>" not in rendered.html
    assert "Acme <Tools> & Co" in rendered.text
    # What an email client needs: a language, a title, inline styles, the brand colour.
    assert '<html lang="en">' in rendered.html
    assert f"<title>{_html_escaped(rendered.subject)}</title>" in rendered.html
    assert "<style" not in rendered.html and "stylesheet" not in rendered.html
    assert "#0b5cad" in rendered.html
    assert 'name="viewport"' in rendered.html


@pytest.mark.parametrize(
    ("template", "subject"),
    [
        ("welcome", "Welcome: set your password"),
        ("payment_failed", "Your payment failed"),
        ("downgraded_after_grace", "Your plan was moved to free"),
        ("set_password_link", "Your new link to set your password"),
    ],
)
def test_subjects(template: TemplateName, subject: str) -> None:
    fields = sample_fields(template, set_password_url=SET_PASSWORD, now=NOW)
    assert render_email(template, brand=BRAND, fields=fields).subject == subject


def test_a_message_is_multipart_text_then_html() -> None:
    fields = sample_fields("welcome", set_password_url=SET_PASSWORD, now=NOW)
    rendered = render_email("welcome", brand=BRAND, fields=fields)
    message = compose(
        rendered, sender="Acme <no-reply@acme.test>", to="a@b.test", message_id="<x@y>"
    )
    parsed = email.message_from_bytes(bytes(message), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    plain = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert fields["link"] in plain.get_content()
    assert fields["link"] in html.get_content()
    assert parsed["Subject"] == "Welcome: set your password"
    assert parsed["Message-ID"] == "<x@y>" and parsed["X-Onramp-Template"] == "welcome"


def test_the_new_link_email_says_earlier_links_no_longer_work() -> None:
    fields = sample_fields("set_password_link", set_password_url=SET_PASSWORD, now=NOW)
    rendered = render_email("set_password_link", brand=BRAND, fields=fields)
    assert rendered.preheader.startswith("Here is a new link")
    assert "earlier no longer work" in rendered.text
    assert "earlier no longer work" in rendered.html


def test_payment_failed_says_until_when_in_words() -> None:
    rendered = render_email(
        "payment_failed", brand=BRAND, fields={"grace_until": "2026-12-07T09:30:00+00:00"}
    )
    assert "until 7 December 2026, 09:30 UTC" in rendered.text
    assert "7 December 2026, 09:30 UTC" in rendered.html
    # Without a grace period the email still reads as a sentence.
    without = render_email("payment_failed", brand=BRAND, fields={})
    assert "until" not in without.text and "update your payment method" in without.text


def test_a_field_a_template_needs_is_never_left_blank() -> None:
    with pytest.raises(EmailFieldMissing, match="link"):
        render_email("welcome", brand=BRAND, fields={})


def test_a_field_cannot_break_out_of_the_html() -> None:
    rendered = render_email(
        "welcome", brand=BRAND, fields={"link": 'https://x.test/?t="><script>alert(1)</script>'}
    )
    assert "<script>" not in rendered.html
    assert "&#34;&gt;&lt;script&gt;" in rendered.html


def test_the_brand_colour_is_validated_before_it_reaches_a_style() -> None:
    with pytest.raises(ValidationError):
        EmailBrand(brand_color="red;background:url(https://x.test)")


def test_the_dashboard_defaults_to_the_public_url() -> None:
    assert EmailBrand(public_url="https://api.test").dashboard == "https://api.test/"
    assert set_password_base_url("https://app.test/pw", "https://api.test") == "https://app.test/pw"
    assert (
        set_password_base_url(None, "https://api.test/")
        == "https://api.test/v1/portal/set-password"
    )


def test_the_preview_command_writes_every_template(tmp_path: Path) -> None:
    # No database, Temporal or Stripe settings: the preview needs none of them.
    keep = {"PATH", "HOME", "LANG", "VIRTUAL_ENV", "SYSTEMROOT"}
    env = {key: value for key, value in os.environ.items() if key in keep}
    env |= {"PLATFORM_NAME": "Acme Tools", "ONRAMP_PUBLIC_URL": "https://api.acme.test"}
    onramp = Path(sys.executable).parent / "onramp"
    out = tmp_path / "preview"
    done = subprocess.run(
        [str(onramp), "email", "preview", "--all", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split()
    expected = [
        str(out / f"{template}.{suffix}")
        for template in TEMPLATE_NAMES
        for suffix in ("html", "txt", "eml")
    ]
    assert printed == expected
    for template in TEMPLATE_NAMES:
        html = (out / f"{template}.html").read_text()
        text = (out / f"{template}.txt").read_text()
        assert "Acme Tools" in html and "Acme Tools" in text and "{{" not in html + text
        message = email.message_from_bytes(
            (out / f"{template}.eml").read_bytes(), policy=email.policy.default
        )
        assert isinstance(message, EmailMessage)
        assert message["X-Onramp-Template"] == template
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    welcome = (out / "welcome.txt").read_text()
    assert "https://api.acme.test/v1/portal/set-password?token=" in welcome


def test_the_preview_command_refuses_an_unknown_template(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "onramp.emails.preview", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "invalid choice" in done.stderr
    assert not any(tmp_path.iterdir())
