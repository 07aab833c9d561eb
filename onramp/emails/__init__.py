"""The emails onramp sends, rendered from templates (HTML and plain text).

The worker's email activity and the preview command (`onramp email preview`) both
render through :func:`render_email`, so a preview is the email a customer receives.
"""

from onramp.emails.render import (
    TEMPLATE_NAMES,
    EmailBrand,
    EmailFieldMissing,
    RenderedEmail,
    TemplateName,
    compose,
    render_email,
    set_password_base_url,
)

__all__ = [
    "TEMPLATE_NAMES",
    "EmailBrand",
    "EmailFieldMissing",
    "RenderedEmail",
    "TemplateName",
    "compose",
    "render_email",
    "set_password_base_url",
]
