"""The Grafana dashboard: every panel's query, and every variable's, run against a
real Prometheus that scraped the operator and the model servers through a healthy and a
rolled-back canary, returns series. Grafana itself does not run here (see the README)."""

from __future__ import annotations

import functools
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testbed.modelserver.traffic import TrafficDriver
from testbed.support.prometheus_server import operator_targets, query
from testbed.support.wait import wait_for

from .conftest import Cluster, Operator
from .test_canary import canary_sample, serving_v1

pytestmark = pytest.mark.timeout(240)
DASHBOARD = Path(__file__).resolve().parents[2] / "integrations" / "grafana" / "modeldeploy.json"


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.extend([panel, *panel.get("panels", [])])
    return [p for p in found if p["type"] != "row"]


def as_grafana_would(expr: str, namespace: str, started: float) -> str:
    """Grafana's variables as it would fill them for this test's resource and time range."""
    span = f"{int(time.monotonic() - started) + 5}s"
    return (
        expr.replace("$namespace", namespace)
        .replace("$name", "mnist")
        .replace("$__rate_interval", "30s")
        .replace("$__range", span)
    )


def label_values(address: str, label: str, match: str) -> list[str]:
    url = f"{address}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(url, timeout=5) as response:
        values: list[str] = json.loads(response.read())["data"]
        return values


def offers_value(address: str, label: str, match: str, wanted: str) -> bool:
    """Whether Prometheus offers ``wanted`` among the values of ``label`` for ``match``."""
    return wanted in label_values(address, label, match)


def test_every_panel_and_variable_query_returns_series_after_canaries(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    prometheus: str,
    tmp_path: Path,
    traffic: Callable[..., TrafficDriver],
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    operator_targets(tmp_path).write_text(json.dumps([{"targets": [f"127.0.0.1:{operator.metrics_port}"]}]))
    started = time.monotonic()
    serving_v1(cluster, namespace, canary_sample())
    driver = traffic(inputs=(1.0, 2.0, 9.0))  # version 3 refuses x = 9
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 2}}})
    cluster.wait_phase(namespace, "mnist", "Ready", timeout=60)
    cluster.patch_md(namespace, "mnist", {"spec": {"model": {"version": 3}}})
    cluster.wait_phase(namespace, "mnist", "Degraded", timeout=60)
    assert driver.counts().get(3, 0) > 0

    # The variables Grafana fills first, from the operator's series.
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert found, variable
        match = as_grafana_would(found.group(1), namespace, started).replace('=~".*"', '=~".+"')
        label = found.group(2)
        wanted = namespace if label == "namespace" else "mnist"
        wait_for(
            functools.partial(offers_value, prometheus, label, match, wanted),
            30,
            what=f"variable {variable['name']}",
        )

    queried = 0
    for panel in panels(dashboard):
        assert panel["targets"], f"panel {panel['title']} has no query"
        for target in panel["targets"]:
            expr = as_grafana_would(target["expr"], namespace, started)
            wait_for(
                functools.partial(query, prometheus, expr),
                30,
                what=f"series for panel {panel['title']!r}: {expr}",
            )
            queried += 1
    assert queried >= 11
    # The queries read what happened, not just that series exist: one promotion, one rollback.
    rollouts = next(p for p in panels(dashboard) if p["title"] == "Rollouts by result")["targets"][0]["expr"]

    def counted() -> dict[str, float]:
        found = query(prometheus, as_grafana_would(rollouts, namespace, started))
        return {s["metric"]["result"]: float(s["value"][1]) for s in found}  # type: ignore[index]

    wait_for(
        lambda: (c := counted())["Promoted"] > 0.5 and c["RolledBack"] > 0.5 and c["Aborted"] == 0,
        30,
        what="the promotion and the rollback counted",
    )


PER_RESOURCE = re.compile(
    r"(\bmodeldeploy_(phase|canary_\w+|analysis_\w+|rollouts_total)|:tensorflow:serving:\w+)\{"
)


def test_every_per_model_panel_filters_and_groups_by_the_model() -> None:
    """Two ModelDeployments in one namespace are two series, and $name picks one: a query of a
    per-model series matches on $namespace and $name and keeps both labels in its sums."""
    checked = 0
    for panel in panels(json.loads(DASHBOARD.read_text())):
        for target in panel["targets"]:
            expr = target["expr"]
            if not PER_RESOURCE.search(expr):
                continue
            for selector in re.findall(r"\{([^}]*)\}", expr):
                assert 'namespace=~"$namespace"' in selector, (panel["title"], expr)
                assert 'name=~"$name"' in selector, (panel["title"], expr)
            for grouping in re.findall(r"by \(([^)]*)\)", expr):
                labels = {g.strip() for g in grouping.split(",")}
                assert {"namespace", "name"} <= labels, (panel["title"], expr)
            checked += 1
    assert checked >= 7
