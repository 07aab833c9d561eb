"""The docs stand alone: a reader never has to leave the repository to follow them.

Every relative link in `README.md` and `docs/*.md` resolves to a file in the
repository; a web address points only at this machine or at the documentation of what
onramp is built on (Stripe, Temporal, the libraries); and no doc cites the design
notes the project was built from, or its issue tracker, which readers do not have.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

# Documentation sites a doc may link to: (host, path prefix). Anything else outside the
# repository is a link a newcomer would have to follow to understand onramp.
ALLOWED_EXTERNAL = (
    ("docs.stripe.com", "/"),
    ("stripe.com", "/docs"),
    ("docs.temporal.io", "/"),
    ("python.temporal.io", "/"),
    ("docs.python.org", "/"),
    ("fastapi.tiangolo.com", "/"),
    ("www.starlette.io", "/"),
    ("docs.pydantic.dev", "/"),
    ("magicstack.github.io", "/asyncpg"),
    ("www.postgresql.org", "/docs"),
    ("schemathesis.readthedocs.io", "/"),
    ("import-linter.readthedocs.io", "/"),
    ("argon2-cffi.readthedocs.io", "/"),
    ("www.standardwebhooks.com", "/"),
)
# The addresses of the development stack on this machine.
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
WEB_ADDRESS = re.compile(r"https?://[^\s)<>\]`\"']+")
SPEC_TOKEN = re.compile(r"\bSPEC\b")
ISSUE_NUMBER = re.compile(r"\bissues?\s*(?:no\.?\s*)?#?\d+|(?<![\w/&#])#\d+\b", re.IGNORECASE)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def _links(text: str) -> list[str]:
    prose = _without_code_blocks(text)
    return INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)


def _is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) and not target.startswith(
        "#"
    )


def _allowed(address: str) -> bool:
    parts = urlsplit(address)
    host = (parts.hostname or "").lower()
    if host in LOCAL_HOSTS:
        return True
    return any(
        host == allowed_host and (parts.path or "/").startswith(prefix)
        for allowed_host, prefix in ALLOWED_EXTERNAL
    )


def test_the_docs_are_found() -> None:
    names = {_name(path) for path in DOCS}
    assert {"README.md", "docs/DESIGN.md", "docs/ARCHITECTURE.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_relative_link_resolves_to_a_file_in_the_repository(doc: Path) -> None:
    broken = []
    for target in _links(doc.read_text(encoding="utf-8")):
        if not _is_relative(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (doc.parent / path).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{_name(doc)} links to files that are not in the repository: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_no_web_address_leaves_for_anything_but_documentation(doc: Path) -> None:
    outside = [a for a in WEB_ADDRESS.findall(doc.read_text(encoding="utf-8")) if not _allowed(a)]
    assert not outside, (
        f"{_name(doc)} sends readers outside the repository: {outside} "
        "(explain it in the docs instead, or add a documentation site to ALLOWED_EXTERNAL)"
    )


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_no_doc_cites_the_design_notes_or_an_issue_number(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    citations = SPEC_TOKEN.findall(text) + ISSUE_NUMBER.findall(text)
    assert not citations, (
        f"{_name(doc)} cites what readers do not have: {citations}; "
        "say it in the repository's own words or link its own doc"
    )


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("https://docs.stripe.com/billing/testing/test-clocks", True),
        ("http://127.0.0.1:8000", True),
        ("https://stripe.com/pricing", False),
        ("https://github.com/temporalio/samples-python", False),
        ("https://docs.stripe.com.example.net/x", False),
    ],
)
def test_the_allow_list_admits_documentation_only(address: str, allowed: bool) -> None:
    assert _allowed(address) is allowed


@pytest.mark.parametrize(
    ("text", "cites"),
    [
        ("see SPEC 3.3", True),
        ("as issue 24 asked", True),
        ("fixed in #17", True),
        ("the `issue_token` update", False),
        ("an update spec names its handler", False),
        ("`a[b][0][c]` keys", False),
    ],
)
def test_citation_patterns(text: str, cites: bool) -> None:
    assert bool(SPEC_TOKEN.search(text) or ISSUE_NUMBER.search(text)) is cites
