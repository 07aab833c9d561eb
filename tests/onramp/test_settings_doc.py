"""README.md's configuration tables are generated from the settings' descriptions."""

from __future__ import annotations

from pydantic import Field

from onramp import settings_doc
from onramp.settings import CONCERNS, ApiSettings, Concern, EmailSettings, WorkerSettings


def test_every_setting_is_described_in_one_concern() -> None:
    assert settings_doc.undocumented_fields() == []
    declared = [name for concern in CONCERNS for name in settings_doc.own_fields(concern)]
    assert len(declared) == len(set(declared)), "a variable declared in two concerns"
    assert set(declared) == {*ApiSettings.model_fields, *WorkerSettings.model_fields}


def test_the_readme_shows_the_generated_tables() -> None:
    readme = settings_doc.README.read_text()
    assert settings_doc.readme_block(readme) == settings_doc.render(), (
        "README.md's configuration differs: run python -m onramp.settings_doc --write"
    )
    assert settings_doc.main(["--check"]) == 0


def test_a_table_names_the_processes_and_defaults() -> None:
    table = settings_doc.render()
    assert "| `DATABASE_URL` | api, worker | **required** |" in table
    assert "| `SMTP_URL` | worker | `smtp://127.0.0.1:1025` |" in table
    assert "| `ONRAMP_API_KEYS` | api | **required** |" in table
    assert "| `CONNECT_CAPABILITIES` | worker | `card_payments,transfers` |" in table
    assert "| `LOG_FORMAT` | api, worker | `json` |" in table


def test_an_undescribed_or_unlisted_setting_is_found() -> None:
    class Undescribed(Concern):
        """A concern someone forgot to document."""

        shiny_new_knob: int = Field(default=1)

    assert settings_doc.undocumented_fields((*CONCERNS, Undescribed)) == ["SHINY_NEW_KNOB"]
    without_email = tuple(concern for concern in CONCERNS if concern is not EmailSettings)
    assert "SMTP_URL" in settings_doc.undocumented_fields(without_email)
