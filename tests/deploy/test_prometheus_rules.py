"""deploy/prometheus/onramp-alerts.yml: a rule file Prometheus would load (its structure
as `promtool check rules` checks it, expressions parsed), on metrics onramp exports, and
every alert with its runbook section in docs/OPERATIONS.md."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy import catalog

RULES_PATH = catalog.ROOT / "deploy/prometheus/onramp-alerts.yml"
RUNBOOKS_PATH = catalog.ROOT / "docs/OPERATIONS.md"
RUNBOOK_URL = "docs/OPERATIONS.md#"

# Prometheus' duration syntax (model.ParseDuration): units largest first, each once.
DURATION = re.compile(r"^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
GROUP_KEYS = {"name", "interval", "limit", "query_offset", "labels", "rules"}
ALERT_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
RECORD_KEYS = {"record", "expr", "labels"}
SEVERITIES = {"critical", "warning"}
ANNOTATIONS = {"summary", "description", "runbook_url"}


def _rule_file() -> dict[str, Any]:
    loaded = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _rule_file()["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _is_duration(value: object) -> bool:
    return isinstance(value, str) and value != "" and DURATION.match(value) is not None


def structure_errors(rule_file: object) -> list[str]:
    """What `promtool check rules` would refuse in the file's structure."""
    if not isinstance(rule_file, dict) or set(rule_file) != {"groups"}:
        return ["the file holds exactly `groups`"]
    errors: list[str] = []
    group_names: set[str] = set()
    for group in rule_file["groups"] or []:
        name = group.get("name")
        if not isinstance(name, str) or not name or name in group_names:
            errors.append(f"group name {name!r} missing or repeated")
        group_names.add(str(name))
        errors += [f"{name}: unknown key {key}" for key in set(group) - GROUP_KEYS]
        if "interval" in group and not _is_duration(group["interval"]):
            errors.append(f"{name}: interval {group['interval']!r}")
        if not isinstance(group.get("rules"), list) or not group["rules"]:
            errors.append(f"{name}: no rules")
            continue
        for rule in group["rules"]:
            errors += _rule_errors(f"{name}/{rule.get('alert') or rule.get('record')}", rule)
    return errors


def _rule_errors(where: str, rule: dict[str, Any]) -> list[str]:
    if ("alert" in rule) == ("record" in rule):
        return [f"{where}: a rule is either `alert` or `record`"]
    allowed = ALERT_KEYS if "alert" in rule else RECORD_KEYS
    errors = [f"{where}: unknown key {key}" for key in set(rule) - allowed]
    name = rule.get("alert", rule.get("record"))
    if not isinstance(name, str) or not LABEL_NAME.match(name):
        errors.append(f"{where}: name {name!r}")
    if not isinstance(rule.get("expr"), str) or not rule["expr"].strip():
        errors.append(f"{where}: no expr")
    else:
        try:
            catalog.parse(rule["expr"])
        except (ValueError, SyntaxError) as error:
            errors.append(f"{where}: expr does not parse ({error})")
    for key in ("for", "keep_firing_for"):
        if key in rule and not _is_duration(rule[key]):
            errors.append(f"{where}: {key} {rule[key]!r} is not a duration")
    for key in ("labels", "annotations"):
        for label, value in (rule.get(key) or {}).items():
            if not isinstance(label, str) or not LABEL_NAME.match(label):
                errors.append(f"{where}: {key} name {label!r}")
            if not isinstance(value, str):
                errors.append(f"{where}: {key}.{label} is not a string")
    return errors


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_sections() -> set[str]:
    text = RUNBOOKS_PATH.read_text(encoding="utf-8")
    alerts = text.split("\n## Alerts\n", 1)[1]
    return {match for match in re.findall(r"^### (.+)$", alerts, re.MULTILINE)}


def test_the_rule_file_has_prometheus_structure() -> None:
    assert structure_errors(_rule_file()) == []
    assert _alerts(), "no alert rules"


@pytest.mark.parametrize(
    "broken",
    [
        {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "2 min"}]}]},
        {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(up"}]}]},
        {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "labels": {"x": 1}}]}]},
        {"groups": [{"name": "g", "rules": [{"alert": "A", "record": "b", "expr": "up"}]}]},
        {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "fr": "1m"}]}]},
        {"groups": [{"name": "g", "rules": []}, {"name": "g", "rules": []}]},
        {"rules": []},
    ],
)
def test_the_structure_check_refuses_what_promtool_would(broken: dict[str, Any]) -> None:
    assert structure_errors(broken)


@pytest.mark.parametrize(
    ("value", "valid"),
    [("2m", True), ("1h30m", True), ("0", True), ("1d", True), ("90", False),
     ("2 min", False), ("1m1h", False), ("", False)],
)  # fmt: skip
def test_durations(value: str, valid: bool) -> None:
    assert _is_duration(value) is valid


def test_alert_names_are_unique() -> None:
    names = [alert["alert"] for alert in _alerts()]
    assert len(names) == len(set(names))


def test_every_alert_has_a_severity_and_says_what_happened() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert set(alert["annotations"]) >= ANNOTATIONS, alert["alert"]


def test_annotations_name_only_labels_the_expression_keeps() -> None:
    """`{{ $labels.queue }}` renders empty when the expression aggregated `queue` away."""
    for alert in _alerts():
        used = set(re.findall(r"\$labels\.(\w+)", yaml.safe_dump(alert["annotations"])))
        kept = catalog.kept_labels(catalog.parse(alert["expr"]))
        assert kept is None or used <= kept, f"{alert['alert']}: {used - (kept or set())}"


@pytest.mark.parametrize(
    ("expression", "kept"),
    [
        ("max by (queue, type) (a) == 0", {"queue", "type"}),
        ("sum(rate(a[5m])) / sum(rate(b[5m])) > 0.05 and sum(c) > 1", set()),
        ("2 * sum by (x) (a)", {"x"}),
        ("sum by (x, y) (a) or sum by (x) (b)", {"x"}),
        ("rate(a[5m]) > 1", None),
        ("sum without (x) (a)", None),
    ],
)
def test_kept_labels(expression: str, kept: set[str] | None) -> None:
    assert catalog.kept_labels(catalog.parse(expression)) == kept


def test_every_metric_a_rule_reads_is_one_onramp_exports() -> None:
    exported = catalog.exported_series(catalog.code_definitions())
    unknown = {
        f"{rule.get('alert') or rule.get('record')}: {name}"
        for rule in _rules()
        for name in catalog.metric_names(rule["expr"])
        if name not in exported
    }
    assert not unknown, f"metrics onramp does not export: {sorted(unknown)}"


def test_every_alert_has_its_runbook_section() -> None:
    sections = _runbook_sections()
    anchors = {_slug(section) for section in sections}
    for alert in _alerts():
        url = alert["annotations"]["runbook_url"]
        assert url == RUNBOOK_URL + _slug(alert["alert"]), alert["alert"]
        assert url.removeprefix(RUNBOOK_URL) in anchors, f"no runbook for {alert['alert']}"
    # and no runbook outlives its alert
    assert sections == {alert["alert"] for alert in _alerts()}


def test_the_operator_is_told_of_the_conditions_that_need_one() -> None:
    """No worker polling, inbox lag, reconcile findings and staleness, provisioning
    failures and Stripe errors: each watched by some alert."""
    watched = {name for alert in _alerts() for name in catalog.metric_names(alert["expr"])}
    assert watched >= {
        "onramp_worker_pollers",
        "onramp_webhook_inbox_lag_seconds",
        "onramp_reconcile_findings",
        "onramp_reconcile_last_run_timestamp_seconds",
        "onramp_provisioning_failures_total",
        "onramp_stripe_errors_total",
    }
    polling = next(a for a in _alerts() if a["alert"] == "OnrampNoWorkerPolling")
    assert polling["for"] == "2m"
