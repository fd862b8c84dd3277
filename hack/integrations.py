"""Generate the files that wrap integrations/prometheus/rules.yaml for other installers.

    python -m hack.integrations          # write them
    python -m hack.integrations --check  # exit 1 if any is out of date (a test runs this)

The plain rules file is the one source: the PrometheusRule of manifests/monitoring/ carries
the same groups, so promtool's tests of the rules hold for every way of installing them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "integrations" / "prometheus" / "rules.yaml"
PROMETHEUS_RULE = REPO / "manifests" / "monitoring" / "prometheusrule.yaml"
HEADER = (
    "# Generated from integrations/prometheus/rules.yaml by `python -m hack.integrations`; do not edit.\n"
)


def prometheus_rule() -> str:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    body = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "modeldeploy",
            "namespace": "modeldeploy-system",
            "labels": {"app.kubernetes.io/name": "modeldeploy-operator"},
        },
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(body, sort_keys=False, width=1000)


def generated() -> dict[Path, str]:
    return {PROMETHEUS_RULE: prometheus_rule()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report files out of date; write nothing")
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(REPO)} is out of date: run python -m hack.integrations", file=sys.stderr
            )
        return 1 if stale else 0
    for path in stale:
        path.write_text(generated()[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
