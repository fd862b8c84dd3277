"""Generate the copies other installers carry of files that have one source.

    python -m hack.integrations          # write them
    python -m hack.integrations --check  # exit 1 if any is out of date (a test runs this)

- integrations/prometheus/rules.yaml: the PrometheusRule of manifests/monitoring/ and the
  chart's files/rules.yaml carry the same groups, so promtool's tests hold for every way of
  installing them;
- manifests/rbac.yaml: the chart's ClusterRole and leader-election Role rules;
- crds/ (generated from the pydantic models): the chart's crds/;
- integrations/grafana/modeldeploy.json: the chart's dashboard ConfigMap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "integrations" / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = REPO / "manifests" / "monitoring" / "prometheusrule.yaml"
RBAC = REPO / "manifests" / "rbac.yaml"
CRD = REPO / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"
DASHBOARD = REPO / "integrations" / "grafana" / "modeldeploy.json"
CHART = REPO / "charts" / "modeldeploy"
# Kinds without a namespace: a RoleBinding cannot grant them (the chart's watchNamespaces).
CLUSTER_SCOPED = {"namespaces", "customresourcedefinitions"}


def generated_from(source: Path) -> str:
    return f"# Generated from {source.relative_to(REPO)} by `python -m hack.integrations`; do not edit.\n"


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, width=1000)


def alert_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def prometheus_rule() -> str:
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "modeldeploy",
            "namespace": "modeldeploy-system",
            "labels": {"app.kubernetes.io/name": "modeldeploy-operator"},
        },
        "spec": {"groups": alert_groups()},
    }
    return generated_from(RULES) + dump(body)


def rbac_rules(kind: str) -> list[dict[str, Any]]:
    document = next(d for d in yaml.safe_load_all(RBAC.read_text()) if d and d["kind"] == kind)
    rules: list[dict[str, Any]] = document["rules"]
    return rules


def chart_files() -> dict[Path, str]:
    cluster_rules = rbac_rules("ClusterRole")
    cluster_scoped = [r for r in cluster_rules if CLUSTER_SCOPED & set(r["resources"])]
    return {
        CHART / "crds" / CRD.name: CRD.read_text(),
        CHART / "files" / "clusterrole-rules.yaml": generated_from(RBAC) + dump(cluster_rules),
        CHART / "files" / "cluster-scoped-rules.yaml": generated_from(RBAC) + dump(cluster_scoped),
        CHART / "files" / "leader-election-rules.yaml": generated_from(RBAC) + dump(rbac_rules("Role")),
        CHART / "files" / "rules.yaml": generated_from(RULES) + dump({"groups": alert_groups()}),
        CHART / "files" / DASHBOARD.name: DASHBOARD.read_text(),
    }


def generated() -> dict[Path, str]:
    return {PROMETHEUS_RULE: prometheus_rule(), **chart_files()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report files out of date; write nothing")
    args = parser.parse_args(argv)
    files = generated()
    stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(REPO)} is out of date: run python -m hack.integrations", file=sys.stderr
            )
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
