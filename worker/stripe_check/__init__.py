"""`onramp stripe check`: onramp's Stripe calls against a platform's test-mode account.

`command` reads the settings and prints the table; `rows` holds the checks themselves.
"""
