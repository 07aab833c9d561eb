"""Routes hold no Temporal code: the gateway (api/temporal_gateway.py), the calls of
api/operations.py and the error table of api/errors.py are the one boundary."""

from __future__ import annotations

import ast
from pathlib import Path

ROUTES = Path(__file__).resolve().parents[2] / "api" / "routes"


def _imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
    return modules


def test_no_route_module_imports_temporalio() -> None:
    modules = sorted(ROUTES.glob("*.py"))
    assert len(modules) > 5, f"no route modules found under {ROUTES}"
    offenders = {
        path.name: sorted(
            name
            for name in _imported_modules(path.read_text())
            if name == "temporalio" or name.startswith("temporalio.")
        )
        for path in modules
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_check_sees_an_import_of_temporalio() -> None:
    found = _imported_modules("import temporalio.client\nfrom temporalio import workflow\n")
    assert found == {"temporalio.client", "temporalio"}
