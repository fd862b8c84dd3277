"""The alert rules, read by their real consumer: Prometheus' promtool (Debian's package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from hack import integrations
from modeldeploy.control import operator_metrics
from modeldeploy.control.kinds import new_cache

pytestmark = pytest.mark.timeout(60)
RULES = integrations.RULES


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is not installed: `make deps` installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=RULES.parent, check=False)


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    """integrations/prometheus/tests.yaml: each alert fires when it should, with its labels and
    text, and stays quiet before its `for` and for other resources."""
    result = promtool("test", "rules", "tests.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_prometheus_rule_carries_the_same_rules(tmp_path: Path) -> None:
    assert integrations.main(["--check"]) == 0, "run python -m hack.integrations"
    spec = yaml.safe_load(integrations.PROMETHEUS_RULE.read_text())["spec"]
    assert spec["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump({"groups": spec["groups"]}))
    result = promtool("check", "rules", str(extracted))
    assert result.returncode == 0, result.stdout + result.stderr


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_names() -> set[str]:
    """Every series name the operator can export, whether or not it has samples yet."""
    families = [
        *operator_metrics.REGISTRY.collect(),
        *operator_metrics.ResourceCollector(new_cache()).collect(),
    ]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def test_every_metric_the_rules_read_is_one_the_operator_exports() -> None:
    used = set(re.findall(r"\bmodeldeploy_[a-z_]+", RULES.read_text()))
    assert used, "the rules read no operator metric"
    assert used <= exported_names(), used - exported_names()


RUNBOOKS = integrations.REPO / "docs" / "operations" / "runbooks.md"


def runbook_anchors() -> set[str]:
    """The anchors a Markdown renderer gives the runbook page's second-level headings."""
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-")) for h in headings}


def alerting_rules() -> list[dict[str, object]]:
    return [rule for group in integrations.alert_groups() for rule in group["rules"] if "alert" in rule]


def test_every_alert_links_its_own_runbook_section() -> None:
    anchors = runbook_anchors()
    for rule in alerting_rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        page, _, anchor = str(annotations.get("runbook_url", "")).partition("#")
        assert page.endswith("docs/operations/runbooks.md"), rule["alert"]
        assert anchor == str(rule["alert"]).lower(), rule["alert"]
        assert anchor in anchors, f"docs/operations/runbooks.md has no section {rule['alert']}"


def test_no_alert_text_names_a_fixed_namespace() -> None:
    """The operator is installed in whatever namespace its admin chose."""
    for rule in alerting_rules():
        assert "modeldeploy-system" not in str(rule["annotations"]), rule["alert"]
        assert "-n modeldeploy" not in str(rule["annotations"]), rule["alert"]
