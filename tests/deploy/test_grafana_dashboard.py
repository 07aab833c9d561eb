"""deploy/grafana/onramp.json: importable by Grafana (a JSON schema of the parts Grafana
needs), wired to the Prometheus data source chosen on import, and querying only what
onramp exports, with PromQL that parses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy import catalog

DASHBOARD_PATH = catalog.ROOT / "deploy/grafana/onramp.json"
SCHEMA_PATH = Path(__file__).with_name("grafana_dashboard.schema.json")
# Every panel and query names the data source by the dashboard's variable, so the
# dashboard works with whatever Prometheus the operator picks on import.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The series the brief of each panel group promises, by the metric it is read from.
ON_THE_DASHBOARD_TOO = {
    "onramp_worker_pollers",
    "onramp_webhook_inbox_lag_seconds",
    "onramp_api_request_seconds",
}


def _dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def _queries() -> list[tuple[str, str]]:
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_the_dashboard_matches_the_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_dashboard())


def test_the_schema_refuses_what_grafana_would() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    dashboard = _dashboard()
    panel = next(p for p in dashboard["panels"] if p["type"] != "row")
    broken = [
        {k: v for k, v in dashboard.items() if k != "schemaVersion"},
        {**dashboard, "panels": [{**panel, "gridPos": {**panel["gridPos"], "w": 30}}]},
        {**dashboard, "panels": [{k: v for k, v in panel.items() if k != "targets"}]},
        {**dashboard, "panels": [{**panel, "targets": [{"refId": "A"}]}]},
    ]
    for candidate in broken:
        assert not validator.is_valid(candidate)


def test_the_data_source_is_a_prometheus_variable() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_query_uses_the_data_source_variable() -> None:
    wrong = []
    for panel in _panels(_dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        if panel["datasource"] != DATASOURCE:
            wrong.append(panel["title"])
        wrong += [
            f"{panel['title']} / {target['refId']}"
            for target in panel["targets"]
            if target["datasource"] != DATASOURCE
        ]
    assert not wrong, f"not on the ${{datasource}} variable: {wrong}"


def test_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = _panels(_dashboard()["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels(_dashboard()["panels"]):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("where", "expression"), _queries(), ids=[q[0] for q in _queries()])
def test_every_query_parses(where: str, expression: str) -> None:
    catalog.parse(expression)


def test_every_metric_a_panel_reads_is_one_onramp_exports() -> None:
    exported = catalog.exported_series(catalog.code_definitions())
    unknown = {
        f"{where}: {name}"
        for where, expression in _queries()
        for name in catalog.metric_names(expression)
        if name not in exported
    }
    assert not unknown, f"metrics onramp does not export: {sorted(unknown)}"


def test_every_agreed_metric_is_on_the_dashboard() -> None:
    read = {name for _, expression in _queries() for name in catalog.metric_names(expression)}
    shown = {
        metric
        for metric in catalog.contract_metrics() | ON_THE_DASHBOARD_TOO
        if any(name == metric or name.startswith(f"{metric.removesuffix('_total')}_")
               for name in read)
    }  # fmt: skip
    assert shown == catalog.contract_metrics() | ON_THE_DASHBOARD_TOO
