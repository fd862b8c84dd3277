"""Generate the copies other installers carry of files that have one source.

    python -m hack.integrations          # write them
    python -m hack.integrations --check  # exit 1 if any is out of date (a test runs this)

- integrations/prometheus/rules.yaml: the PrometheusRule of manifests/monitoring/ and the
  chart's files/rules.yaml carry the same groups, so promtool's tests hold for every way of
  installing them;
- manifests/rbac.yaml: the chart's ClusterRole and leader-election Role rules;
- manifests/rbac-shards.yaml: the chart's shard Role rules (leaderElection.shards above 1);
- manifests/aggregate-roles.yaml: the rules of the chart's view/edit/admin ClusterRoles;
- crds/ (generated from the pydantic models): the chart's templates/crd.yaml, a template so
  `helm upgrade` updates it (helm never upgrades a chart's crds/ folder);
- integrations/grafana/modeldeploy.json: the chart's dashboard ConfigMap;
- charts/modeldeploy/values.schema.json: the values table of the chart's README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "integrations" / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = REPO / "manifests" / "monitoring" / "prometheusrule.yaml"
RBAC = REPO / "manifests" / "rbac.yaml"
RBAC_SHARDS = REPO / "manifests" / "rbac-shards.yaml"
AGGREGATE_ROLES = REPO / "manifests" / "aggregate-roles.yaml"
CRD = REPO / "crds" / "serving.modeldeploy.dev_modeldeployments.yaml"
DASHBOARD = REPO / "integrations" / "grafana" / "modeldeploy.json"
CHART = REPO / "charts" / "modeldeploy"
VALUES_SCHEMA = CHART / "values.schema.json"
CHART_README = CHART / "README.md"
VALUES_TABLE_BEGIN = "<!-- values table: generated from values.schema.json by python -m hack.integrations -->"
VALUES_TABLE_END = "<!-- end of values table -->"
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


def rbac_rules(kind: str, source: Path = RBAC) -> list[dict[str, Any]]:
    document = next(d for d in yaml.safe_load_all(source.read_text()) if d and d["kind"] == kind)
    rules: list[dict[str, Any]] = document["rules"]
    return rules


def aggregate_rules() -> dict[Path, str]:
    """files/aggregate-to-<role>-rules.yaml, the rules of each aggregated ClusterRole."""
    files = {}
    for document in yaml.safe_load_all(AGGREGATE_ROLES.read_text()):
        role = document["metadata"]["name"].rsplit("-", 1)[-1]
        files[CHART / "files" / f"aggregate-to-{role}-rules.yaml"] = generated_from(AGGREGATE_ROLES) + dump(
            document["rules"]
        )
    return files


def crd_template() -> str:
    """The CRD as a chart template: installed and upgraded with the release, kept on uninstall."""
    crd = yaml.safe_load(CRD.read_text())
    body = dump({"spec": crd["spec"]})
    return (
        generated_from(CRD)
        + "{{- if .Values.crds.install }}\n"
        + f"apiVersion: {crd['apiVersion']}\nkind: {crd['kind']}\n"
        + f"metadata:\n  name: {crd['metadata']['name']}\n"
        + '  labels:\n    {{- include "modeldeploy.labels" . | nindent 4 }}\n'
        + "  {{- if .Values.crds.keep }}\n  annotations:\n"
        + "    # helm uninstall leaves it, and with it every ModelDeployment and its serving pods.\n"
        + "    helm.sh/resource-policy: keep\n  {{- end }}\n"
        + template_literal(body)
        + "{{- end }}\n"
    )


def template_literal(text: str) -> str:
    """``text`` as Helm prints it back: each ``{{`` and ``}}`` in it (a custom metric's
    placeholders, in the CRD's descriptions) written as an action printing that string, in one
    pass, so Helm does not read them as its own actions."""
    return re.sub(r"\{\{|\}\}", lambda m: '{{ "' + m.group(0) + '" }}', text)


def schema_rows(schema: dict[str, Any], values: Any, prefix: str = "") -> list[str]:
    """One Markdown table row per value: its key, type, default (values.yaml) and description."""
    rows = []
    for key, prop in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = values.get(key) if isinstance(values, dict) else None
        closed = prop.get("additionalProperties") is False
        if prop.get("type") == "object" and prop.get("properties") and closed:
            rows.extend(schema_rows(prop, default, f"{path}."))
            continue
        if key == "global":
            continue
        kind = prop.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        allowed = f" One of: {', '.join(map(str, prop['enum']))}." if "enum" in prop else ""
        shown = "" if default is None else f"`{json.dumps(default)}`"
        description = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{path}` | {kind} | {shown} | {description}{allowed} |")
    return rows


def chart_readme() -> str:
    """CHART_README with its values table regenerated between the markers."""
    text = CHART_README.read_text()
    head, _, rest = text.partition(VALUES_TABLE_BEGIN + "\n")
    _, _, tail = rest.partition(VALUES_TABLE_END)
    schema = json.loads(VALUES_SCHEMA.read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    header = ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    table = [*header, *schema_rows(schema, values)]
    return head + VALUES_TABLE_BEGIN + "\n" + "\n".join(table) + "\n" + VALUES_TABLE_END + tail


def chart_files() -> dict[Path, str]:
    cluster_rules = rbac_rules("ClusterRole")
    cluster_scoped = [r for r in cluster_rules if CLUSTER_SCOPED & set(r["resources"])]
    return {
        CHART / "templates" / "crd.yaml": crd_template(),
        **aggregate_rules(),
        CHART_README: chart_readme(),
        CHART / "files" / "clusterrole-rules.yaml": generated_from(RBAC) + dump(cluster_rules),
        CHART / "files" / "cluster-scoped-rules.yaml": generated_from(RBAC) + dump(cluster_scoped),
        CHART / "files" / "leader-election-rules.yaml": generated_from(RBAC) + dump(rbac_rules("Role")),
        CHART / "files" / "shard-rules.yaml": generated_from(RBAC_SHARDS)
        + dump(rbac_rules("Role", RBAC_SHARDS)),
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
