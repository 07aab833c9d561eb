"""docker-compose.yml cannot run here (no Docker engine); check its shape instead, and that
every file under deploy/ parses and is described in deploy/README.md."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_has_every_service_with_dependencies_in_order() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "postgres", "temporal-schema", "temporal", "temporal-register", "temporal-ui",
        "migrate", "api", "worker",
    }  # fmt: skip
    assert "healthcheck" in services["postgres"]
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    for app in ("api", "worker"):
        assert services[app]["build"] == "."
        assert services[app]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[app]["depends_on"]["temporal-register"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["command"] == ["onramp", "migrate"]


def test_required_values_are_marked() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for name in ("POSTGRES_PASSWORD", "STRIPE_SECRET_KEY", "ONRAMP_API_KEYS",
                 "STRIPE_WEBHOOK_SECRETS", "ONRAMP_PUBLIC_URL"):  # fmt: skip
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} is not marked required"


def test_registration_script_registers_every_search_attribute() -> None:
    script = (ROOT / "deploy/temporal/register.sh").read_text()
    for key in search_attributes.ALL:
        assert key.name in script


def test_shell_scripts_parse() -> None:
    for script in (ROOT / "deploy/temporal").glob("*.sh"):
        subprocess.run(["sh", "-n", str(script)], check=True)


def test_every_deploy_file_is_described_in_its_readme() -> None:
    readme = (ROOT / "deploy/README.md").read_text()
    described = set(re.findall(r"`([\w./-]+)`", readme))
    for path in (ROOT / "deploy").rglob("*"):
        if not path.is_file() or path.name == "README.md":
            continue
        relative = path.relative_to(ROOT / "deploy")
        assert str(relative) in described or f"{relative.parent}/" in described, (
            f"deploy/{relative} is not in deploy/README.md"
        )


def test_deploy_data_files_parse() -> None:
    for path in (ROOT / "deploy").rglob("*.y*ml"):
        assert yaml.safe_load(path.read_text()) is not None, path
    for path in (ROOT / "deploy").rglob("*.json"):
        assert json.loads(path.read_text()), path
