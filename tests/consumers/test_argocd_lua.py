"""integrations/argocd: health.lua and the actions, run in Argo CD's Lua VM (gopher-lua set
up as Argo CD's util/lua does, hack/tools/luarun) over objects captured from the suite,
the way Argo CD tests its own resource_customizations."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed.support.tools import ARGOCD_SCRIPTS, run_lua

pytestmark = pytest.mark.timeout(120)
HEALTH_TESTS = yaml.safe_load((ARGOCD_SCRIPTS / "health_test.yaml").read_text())["tests"]
ACTION_TESTS = yaml.safe_load((ARGOCD_SCRIPTS / "actions" / "action_test.yaml").read_text())
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def load(path: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((ARGOCD_SCRIPTS / path).read_text())
    return obj


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=[Path(t["inputPath"]).stem for t in HEALTH_TESTS])
def test_health(case: dict[str, Any]) -> None:
    assert run_lua(ARGOCD_SCRIPTS / "health.lua", load(case["inputPath"])) == case["healthStatus"]


def test_every_health_status_argo_cd_shows_for_a_rollout_is_covered() -> None:
    covered = {case["healthStatus"]["status"] for case in HEALTH_TESTS}
    assert covered == {"Healthy", "Progressing", "Suspended", "Degraded"}


@pytest.mark.parametrize(
    "case",
    ACTION_TESTS["discoveryTests"],
    ids=[Path(t["inputPath"]).stem for t in ACTION_TESTS["discoveryTests"]],
)
def test_discovery(case: dict[str, Any]) -> None:
    actions = run_lua(ARGOCD_SCRIPTS / "actions" / "discovery.lua", load(case["inputPath"]))
    assert set(actions) == {"promote", "abort", "retry", "pause", "resume"}
    assert sorted(name for name, action in actions.items() if not action["disabled"]) == case["result"]


@pytest.mark.parametrize(
    "case", ACTION_TESTS["actionTests"], ids=[t["action"] for t in ACTION_TESTS["actionTests"]]
)
def test_action_changes_exactly_its_field(case: dict[str, Any]) -> None:
    before = load(case["inputPath"])
    after = run_lua(ARGOCD_SCRIPTS / "actions" / case["action"] / "action.lua", before)
    expected = copy.deepcopy(before)
    if "annotation" in case:
        value = after["metadata"]["annotations"][case["annotation"]]
        assert TIMESTAMP.match(value), value
        expected["metadata"].setdefault("annotations", {})[case["annotation"]] = value
    else:
        assert after["spec"]["rollout"]["paused"] is case["paused"]
        expected["spec"]["rollout"]["paused"] = case["paused"]
    assert after == expected


def test_the_vm_is_as_closed_as_argo_cds(tmp_path: Path) -> None:
    """Argo CD opens no io and only os.time/os.date: a script that reaches further fails here too."""
    script = tmp_path / "escape.lua"
    script.write_text('os.execute("true")\nreturn {}\n')
    with pytest.raises(AssertionError, match="attempt to call a non-function object"):
        run_lua(script, {})
