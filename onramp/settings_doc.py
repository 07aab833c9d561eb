"""Render README.md's configuration tables from the settings' own descriptions.

`python -m onramp.settings_doc` prints the tables; `--write` replaces the block between
the markers in README.md; `--check` exits 1 when the README differs. Each concern is one
table: variable, the processes that read it, its default, its description.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from onramp.settings import CONCERNS, ApiSettings, Concern, WorkerSettings

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"


def own_fields(concern: type[Concern]) -> dict[str, FieldInfo]:
    """The fields a concern declares itself (not those of a concern it extends)."""
    inherited = {name for base in concern.__mro__[1:] for name in getattr(base, "model_fields", {})}
    return {name: info for name, info in concern.model_fields.items() if name not in inherited}


def undocumented_fields(concerns: Sequence[type[Concern]] = CONCERNS) -> list[str]:
    """Variables without a description, or read by a process but in no listed concern."""
    documented: dict[str, FieldInfo] = {}
    for concern in concerns:
        documented.update(own_fields(concern))
    used = {*ApiSettings.model_fields, *WorkerSettings.model_fields}
    missing = [name for name in sorted(used) if name not in documented]
    missing += [name for name, info in documented.items() if not info.description]
    return [name.upper() for name in missing]


def _used_by(name: str) -> str:
    processes = [
        label
        for label, settings in (("api", ApiSettings), ("worker", WorkerSettings))
        if name in settings.model_fields
    ]
    return ", ".join(processes) or "commands"


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, list):
        return f"`{','.join(str(item) for item in value)}`"
    return f"`{value}`"


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return _format_value(info.default_factory())  # type: ignore[call-arg]
    if info.default is PydanticUndefined:
        return "**required**"
    if info.default is None:
        return "unset"
    return _format_value(info.default)


def _choices(info: FieldInfo) -> str:
    if typing.get_origin(info.annotation) is not typing.Literal:
        return ""
    choices = [f"`{choice}`" for choice in typing.get_args(info.annotation)]
    if all(choice in (info.description or "") for choice in choices):
        return ""
    return f" (one of {', '.join(choices)})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_concern(concern: type[Concern]) -> str:
    """One Markdown table: the concern's first docstring line, then a row per variable."""
    title = (concern.__doc__ or concern.__name__).strip().splitlines()[0].rstrip(".")
    rows = [
        f"**{title}**",
        "",
        "| variable | used by | default | description |",
        "|---|---|---|---|",
    ]
    for name, info in own_fields(concern).items():
        description = _cell((info.description or "") + _choices(info))
        rows.append(f"| `{name.upper()}` | {_used_by(name)} | {_default(info)} | {description} |")
    return "\n".join(rows)


def render() -> str:
    """Every concern's table, in the order of `CONCERNS`."""
    return "\n\n".join(render_concern(concern) for concern in CONCERNS)


def readme_block(text: str) -> str:
    """What stands between the markers of a README (ValueError without them)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} … {END} block")
    return text[start + len(BEGIN) : end].strip("\n")


def with_block(text: str, block: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {BEGIN} … {END} block")
    return f"{text[: start + len(BEGIN)]}\n{block}\n{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onramp.settings_doc", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="update README.md in place")
    action.add_argument("--check", action="store_true", help="exit 1 if README.md differs")
    args = parser.parse_args(argv)
    missing = undocumented_fields()
    if missing:
        sys.stderr.write(f"settings without a description: {', '.join(missing)}\n")
        return 1
    block = render()
    if args.write:
        README.write_text(with_block(README.read_text(), block))
        return 0
    if args.check:
        if readme_block(README.read_text()) != block:
            sys.stderr.write(
                "README.md's configuration differs: run python -m onramp.settings_doc --write\n"
            )
            return 1
        return 0
    sys.stdout.write(block + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
