"""`onramp stripe check` (`python -m worker.stripe_check`): onramp's Stripe calls against
a platform's own test-mode account, with a table of what worked.

Each row runs onramp's own activity code where there is one (under
`temporalio.testing.ActivityEnvironment`, which gives an activity its context without a
Temporal server), so the check sends exactly the parameters onramp sends in production:
a customer on its own test clock, an Express account and its account link, a Checkout
Session, a subscription on the test clock renewed by advancing the clock, a price
change, and a card that needs authentication, whose payment must come back as
requiring action. Everything it made is deleted (or archived, for what Stripe cannot
delete) afterwards, after a failure too. Exit status 1 when any row failed.

It refuses live keys: test clocks and test cards exist in test mode only, and a check
must never charge anyone. `STRIPE_API_BASE` points it at the sandbox.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import SecretStr, ValidationError, field_validator

from onramp.settings import (
    PublicUrlSettings,
    StripeClientSettings,
    describe_validation_error,
    stripe_key_is_live,
)
from onramp.stripe_client import build_stripe_client
from worker.stripe_check.records import Row
from worker.stripe_check.rows import StripeCheck


class CheckSettings(StripeClientSettings, PublicUrlSettings):
    """The platform's test key, for the sandbox the API base, and the public URL the
    account link's return URLs are built under."""

    @field_validator("stripe_secret_key")
    @classmethod
    def _test_key_only(cls, value: SecretStr) -> SecretStr:
        if stripe_key_is_live(value.get_secret_value()):
            raise ValueError(
                "is a live key: `onramp stripe check` runs in test mode only (sk_test_…)"
            )
        return value


def render(rows: list[Row]) -> str:
    width = max(len(row.name) for row in rows)
    lines = [f"{'✓' if row.ok else '✗'} {row.name.ljust(width)}  {row.detail}" for row in rows]
    failed = sum(not row.ok for row in rows)
    lines.append(
        f"{len(rows) - failed}/{len(rows)} passed" + (f", {failed} failed" if failed else "")
    )
    return "\n".join(lines)


async def check(settings: CheckSettings) -> list[Row]:
    client = build_stripe_client(
        settings.stripe_secret_key.get_secret_value(), settings.stripe_api_base
    )
    return await StripeCheck(client, settings.onramp_public_url).run()


def main() -> None:
    try:
        settings = CheckSettings()  # read from the environment
    except ValidationError as error:
        print(describe_validation_error(error), file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
    rows = asyncio.run(check(settings))
    print(render(rows))  # noqa: T201
    raise SystemExit(0 if all(row.ok for row in rows) else 1)
