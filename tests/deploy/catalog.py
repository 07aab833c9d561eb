"""The metric names onramp exports, read from the code, and the names a PromQL expression
uses, read with a PromQL parser: what the dashboard and alert tests compare.

The code is read, not imported: every call that defines a metric (prometheus_client's
`Counter("onramp_…", …)`, or a meter's `create_histogram("onramp_…")`) names it, so a
rename in the code makes a dashboard panel or an alert rule that still uses the old
name fail its test.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser

ROOT = Path(__file__).resolve().parents[2]
# Where onramp's processes define what they export (the sandbox and tooling export none).
PACKAGES = ("onramp", "workflows", "activities", "api", "worker")
PREFIX = "onramp_"

_KINDS = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
    "Summary": "summary",
    "Info": "info",
    "Enum": "gauge",
    "create_counter": "counter",
    "create_observable_counter": "counter",
    "create_up_down_counter": "gauge",
    "create_observable_up_down_counter": "gauge",
    "create_gauge": "gauge",
    "create_gauge_float": "gauge",
    "create_observable_gauge": "gauge",
    "create_histogram": "histogram",
    "create_histogram_float": "histogram",
    "create_histogram_timedelta": "histogram",
}

# Names every engineer agreed on whose definitions may not be in the code yet, grouped
# by the prefix of their family. A family's names are accepted on trust only while the
# code defines no metric of that family: once one lands, every name of it must be in the
# code, so a rename or a forgotten metric fails here instead of in an empty panel.
CONTRACT: dict[str, dict[str, str]] = {
    "onramp_reconcile_": {
        "onramp_reconcile_findings": "gauge",
        "onramp_reconcile_last_run_timestamp_seconds": "gauge",
        "onramp_reconcile_duration_seconds": "gauge",
    },
    "onramp_step_": {
        "onramp_step_duration_seconds": "histogram",
        "onramp_step_failures_total": "counter",
    },
    "onramp_stripe_": {
        "onramp_stripe_request_seconds": "histogram",
        "onramp_stripe_errors_total": "counter",
    },
    "onramp_checkout_pay_to_provisioned_": {
        "onramp_checkout_pay_to_provisioned_seconds": "histogram",
    },
    "onramp_webhook_lag_": {"onramp_webhook_lag_seconds": "histogram"},
    "onramp_provisioning_failures": {"onramp_provisioning_failures_total": "counter"},
}


@dataclass(frozen=True)
class Definition:
    name: str
    kind: str
    where: str


def series(name: str, kind: str) -> set[str]:
    """The series names Prometheus stores for one metric (as prometheus_client exports it)."""
    if kind == "counter":
        base = name.removesuffix("_total")
        return {f"{base}_total", f"{base}_created"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "…"` strings, for definitions that pass a constant."""
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _name_argument(call: ast.Call, constants: dict[str, str]) -> str | None:
    candidates = [*call.args[:1], *(k.value for k in call.keywords if k.arg == "name")]
    for argument in candidates:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            return argument.value
        if isinstance(argument, ast.Name) and argument.id in constants:
            return constants[argument.id]
    return None


def definitions_in(source: str, where: str) -> Iterator[Definition]:
    """Every onramp metric one module's source defines."""
    tree = ast.parse(source)
    constants = _constants(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        called = function.attr if isinstance(function, ast.Attribute) else None
        called = function.id if isinstance(function, ast.Name) else called
        if called not in _KINDS:
            continue
        name = _name_argument(node, constants)
        if name is not None and name.startswith(PREFIX):
            yield Definition(name, _KINDS[called], f"{where}:{node.lineno}")


def code_definitions(root: Path = ROOT) -> list[Definition]:
    found: list[Definition] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found.extend(definitions_in(path.read_text(), str(path.relative_to(root))))
    return found


def exported_series(definitions: Iterable[Definition]) -> set[str]:
    """What Prometheus may query: the code's series, and the agreed names of every family
    the code defines nothing of yet."""
    definitions = list(definitions)
    names = set()
    for definition in definitions:
        names |= series(definition.name, definition.kind)
    for prefix, family in CONTRACT.items():
        if not any(d.name.startswith(prefix) for d in definitions):
            for name, kind in family.items():
                names |= series(name, kind)
    return names


def contract_metrics() -> set[str]:
    return {name for family in CONTRACT.values() for name in family}


# Grafana's built-in interval variables, replaced by a duration before parsing.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
_VARIABLE = re.compile(r"\$\{?\w+")


def parse(expression: str) -> promql_parser.Expr:
    """Parse a PromQL expression, Grafana's interval variables allowed (any other
    variable is an error: Prometheus would not know it)."""
    for variable, duration in GRAFANA_INTERVALS.items():
        expression = expression.replace(variable, duration)
    leftover = _VARIABLE.findall(expression)
    if leftover:
        raise ValueError(f"unknown variables {leftover}")
    return promql_parser.parse(expression)


def metric_names(expression: str) -> set[str]:
    """The metric name of every selector in an expression."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(parse(expression), pre_visit=visit)
    return names


def kept_labels(node: promql_parser.Expr) -> set[str] | None:
    """The labels every series of the expression's result carries, when the expression
    fixes them (an aggregation `by`, a scalar); None when it keeps its input's labels,
    whatever they are."""
    if isinstance(node, promql_parser.AggregateExpr):
        if node.modifier is None:
            return set()
        if node.modifier.type == promql_parser.AggModifierType.By:
            return set(node.modifier.labels)
        return None
    if isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return kept_labels(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        left, right = kept_labels(node.lhs), kept_labels(node.rhs)
        if isinstance(node.lhs, promql_parser.NumberLiteral):
            return right
        if str(node.op) == "or" and left is not None and right is not None:
            return left & right  # a series from either side
        return left
    if isinstance(node, promql_parser.NumberLiteral):
        return set()
    return None
