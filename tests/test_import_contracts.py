"""The import-linter contracts in pyproject.toml (run by `make lint`) keep up with the tree.

The API may import only `workflows.contracts`, `workflows.errors` and
`workflows.search_attributes`; import-linter names forbidden modules one by one, so a new
workflow module must be added to the lists, or the API could import it unnoticed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPEN_TO_THE_API = {"errors", "search_attributes"}


def _contract(contract_id: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(contract for contract in contracts if contract["id"] == contract_id)


def _workflow_modules() -> set[str]:
    return {
        f"workflows.{path.stem}"
        for path in (ROOT / "workflows").glob("*.py")
        if path.stem != "__init__" and path.stem not in OPEN_TO_THE_API
    }


def test_the_api_may_import_no_workflow_module_but_the_contracts() -> None:
    forbidden = set(_contract("api")["forbidden_modules"])
    assert _workflow_modules() <= forbidden, _workflow_modules() - forbidden


def test_contracts_import_no_workflow_module() -> None:
    forbidden = set(_contract("contracts")["forbidden_modules"])
    assert _workflow_modules() <= forbidden, _workflow_modules() - forbidden


def test_every_top_level_package_is_under_contract() -> None:
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if not path.parent.name.startswith(".") and "egg-info" not in path.parent.name
    }
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert packages == set(config["tool"]["importlinter"]["root_packages"])
