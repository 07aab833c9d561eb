"""The sandbox's arrows, read from its source with `ast`: the Stripe domain knows nothing
of HTTP, and nothing in the sandbox imports onramp."""

from __future__ import annotations

import ast
from pathlib import Path

import sandbox

ROOT = Path(sandbox.__file__).parent
ONRAMP = ("onramp", "api", "worker", "workflows", "activities")
HTTP = ("starlette", "fastapi", "uvicorn", "httpx", "sandbox.http")


def _imports(path: Path, top: Path) -> list[str]:
    """Every module a file imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(top).with_suffix("").parts[:-1])
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def _offending(files: list[Path], banned: tuple[str, ...], top: Path = ROOT.parent) -> list[str]:
    return sorted(
        f"{path.relative_to(top).as_posix()} imports {name}"
        for path in files
        for name in _imports(path, top)
        if any(name == b or name.startswith(f"{b}.") for b in banned)
    )


def test_the_domain_imports_no_http() -> None:
    files = sorted((ROOT / "domain").rglob("*.py"))
    assert files
    assert _offending(files, HTTP) == []


def test_the_sandbox_imports_nothing_of_onramp() -> None:
    files = sorted(ROOT.rglob("*.py"))
    assert _offending(files, ONRAMP) == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    probe = tmp_path / "sandbox" / "domain" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from starlette.requests import Request\nfrom ..http import app\nimport worker\n"
    )
    assert _offending([probe], HTTP, tmp_path) == [
        "sandbox/domain/probe.py imports sandbox.http",
        "sandbox/domain/probe.py imports sandbox.http.app",
        "sandbox/domain/probe.py imports starlette.requests",
        "sandbox/domain/probe.py imports starlette.requests.Request",
    ]
    assert _offending([probe], ONRAMP, tmp_path) == ["sandbox/domain/probe.py imports worker"]
