"""The reading of the code's metric definitions that the dashboard and rule tests trust."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

import api.app  # noqa: F401  (registers every metric of the API)
from tests.deploy import catalog
from tests.deploy.catalog import Definition

SOURCE = """
from prometheus_client import Counter, Histogram
NAME = "onramp_named_seconds"
A = Counter("onramp_a_total", "doc", ["x"])
B = Histogram(NAME, "doc")
C = meter.create_histogram_timedelta(name="onramp_c_seconds")
D = Counter("someone_elses_total", "doc")
"""


def test_definitions_are_read_with_their_kind() -> None:
    found = {(d.name, d.kind) for d in catalog.definitions_in(SOURCE, "m.py")}
    assert found == {
        ("onramp_a_total", "counter"),
        ("onramp_named_seconds", "histogram"),
        ("onramp_c_seconds", "histogram"),
    }


@pytest.mark.parametrize(
    ("name", "kind", "series"),
    [
        ("onramp_a_total", "counter", {"onramp_a_total", "onramp_a_created"}),
        ("onramp_a", "counter", {"onramp_a_total", "onramp_a_created"}),
        ("onramp_b_seconds", "histogram",
         {"onramp_b_seconds_bucket", "onramp_b_seconds_sum", "onramp_b_seconds_count",
          "onramp_b_seconds_created"}),
        ("onramp_g", "gauge", {"onramp_g"}),
    ],
)  # fmt: skip
def test_series_of_a_metric(name: str, kind: str, series: set[str]) -> None:
    assert catalog.series(name, kind) == series


def test_agreed_names_count_only_until_their_family_lands() -> None:
    nothing_yet = catalog.exported_series([])
    assert "onramp_reconcile_findings" in nothing_yet
    assert "onramp_stripe_errors_total" in nothing_yet
    # the family landed with one metric renamed: the agreed name no longer counts
    renamed = [
        Definition("onramp_reconcile_findings_count", "gauge", "x.py:1"),
        Definition("onramp_reconcile_last_run_timestamp_seconds", "gauge", "x.py:2"),
    ]
    landed = catalog.exported_series(renamed)
    assert "onramp_reconcile_findings" not in landed
    assert "onramp_reconcile_last_run_timestamp_seconds" in landed
    assert "onramp_reconcile_duration_seconds" not in landed
    assert "onramp_stripe_errors_total" in landed


def test_the_reading_finds_every_metric_the_api_registers() -> None:
    registered = {
        metric.name for metric in REGISTRY.collect() if metric.name.startswith(catalog.PREFIX)
    }
    read = {d.name.removesuffix("_total") for d in catalog.code_definitions()}
    assert registered, "the API registers no onramp metric"
    assert registered <= read


def test_metric_names_of_an_expression() -> None:
    expression = (
        "sum by (op) (rate(onramp_a_total{code!='x'}[$__rate_interval])) "
        "/ on (op) sum by (op) (rate(onramp_b_count[5m])) > 0 or absent(onramp_c)"
    )
    assert catalog.metric_names(expression) == {"onramp_a_total", "onramp_b_count", "onramp_c"}


def test_unknown_variables_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown variables"):
        catalog.parse('onramp_a{queue="$queue"}')
