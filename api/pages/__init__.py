"""The pages end users see: one Jinja2 environment, one stylesheet, no build step.

Routes that people open in a browser (set-password, the checkout status page, Connect
onboarding links, the billing page) answer a page when the request accepts HTML and the
JSON error shape otherwise (`negotiation.wants_html`). Templates live in `templates/`,
the stylesheet and the pages' scripts in `static/` (served at `/static/…` by
`api/routes/static.py`); every page gets the platform's name and colour from
`BrandSettings`.
"""
