"""`make release`'s guards and the parts of it that need no image builder: the refusals
(a version that is not semver, a dirty tree), the version written into the staged copy, the
chart's values pinned, and the plugin package's dependencies kept in step with the root's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from hack.release import CHART, pin_chart_values, pinned, refusal, stage
from tests.unit.test_layers import imported_top_level

REPO = Path(__file__).resolve().parents[2]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True)


@pytest.fixture
def clean_repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "a")
    return tmp_path


@pytest.mark.parametrize("version", ["1.2", "v1.2.3", "", "1.2.3.4", "01.2.3", "1.2.3-"])
def test_a_version_that_is_not_semver_is_refused_in_one_line(clean_repo: Path, version: str) -> None:
    reason = refusal(version, clean_repo)
    assert reason is not None
    assert "not a semantic version" in reason
    assert "\n" not in reason


@pytest.mark.parametrize("version", ["0.1.0", "1.2.3", "1.2.3-rc.1", "10.20.30+build.7"])
def test_a_semver_version_of_a_clean_tree_is_released(clean_repo: Path, version: str) -> None:
    assert refusal(version, clean_repo) is None


@pytest.mark.parametrize("change", ["modified", "untracked"])
def test_a_dirty_tree_is_refused_in_one_line(clean_repo: Path, change: str) -> None:
    (clean_repo / ("a.txt" if change == "modified" else "b.txt")).write_text("b\n")
    reason = refusal("1.2.3", clean_repo)
    assert reason is not None
    assert "uncommitted changes" in reason
    assert "\n" not in reason


def test_the_staged_copy_carries_the_version_in_both_projects_and_the_package(tmp_path: Path) -> None:
    source = stage(REPO, "4.5.6", tmp_path)
    for pyproject in ("pyproject.toml", "plugin/pyproject.toml"):
        assert tomllib.loads((source / pyproject).read_text())["project"]["version"] == "4.5.6"
    assert '__version__ = "4.5.6"' in (source / "operator/modeldeploy/__init__.py").read_text()
    assert (source / "Dockerfile").read_bytes() == (REPO / "Dockerfile").read_bytes()


def test_the_chart_values_pin_both_images_and_change_nothing_else(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(REPO / CHART, chart)
    pin_chart_values(chart, "4.5.6")
    before = yaml.safe_load((REPO / CHART / "values.yaml").read_text())
    after = yaml.safe_load((chart / "values.yaml").read_text())
    assert after["image"]["tag"] == "4.5.6"
    assert after["fetcherImage"] == pinned(before["fetcherImage"], "4.5.6")
    assert after["fetcherImage"].endswith("/fetcher:4.5.6")
    after["image"]["tag"], after["fetcherImage"] = before["image"]["tag"], before["fetcherImage"]
    assert after == before
    comments = re.compile(r"#.*")
    assert comments.findall((chart / "values.yaml").read_text()) == comments.findall(
        (REPO / CHART / "values.yaml").read_text()
    )


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("modeldeploy/operator:0.1.0", "modeldeploy/operator:4.5.6"),
        ("docker.io/modeldeploy/fetcher", "docker.io/modeldeploy/fetcher:4.5.6"),
        ("localhost:5000/modeldeploy/fetcher:0.1.0", "localhost:5000/modeldeploy/fetcher:4.5.6"),
        ("localhost:5000/fetcher", "localhost:5000/fetcher:4.5.6"),
    ],
)
def test_an_image_reference_is_pinned_to_the_version(reference: str, expected: str) -> None:
    assert pinned(reference, "4.5.6") == expected


def _requirement_names(requirements: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower(): r for r in requirements}


def test_the_plugin_package_requires_the_plugin_extra_and_what_api_imports() -> None:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    plugin = tomllib.loads((REPO / "plugin" / "pyproject.toml").read_text())["project"]
    base = _requirement_names(root["dependencies"])
    expected = {
        **_requirement_names(root["optional-dependencies"]["plugin"]),
        "pydantic": base["pydantic"],
        "pyyaml": base["pyyaml"],
        "urllib3": base["urllib3"],
    }
    assert _requirement_names(plugin["dependencies"]) == expected
    assert plugin["scripts"]["kubectl-modeldeploy"] == root["scripts"]["kubectl-modeldeploy"]


# The import name of each distribution the plugin package requires.
PLUGIN_IMPORTS = {
    "kubernetes": "kubernetes",
    "click": "click",
    "rich": "rich",
    "pydantic": "pydantic",
    "yaml": "pyyaml",
    "urllib3": "urllib3",
}


def test_the_plugin_package_requires_every_library_its_modules_import() -> None:
    package = REPO / "operator" / "modeldeploy"
    imported = set().union(
        *(imported_top_level(f) for sub in ("api", "cli") for f in (package / sub).rglob("*.py"))
    )
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    plugin = tomllib.loads((REPO / "plugin" / "pyproject.toml").read_text())["project"]
    assert third_party <= set(PLUGIN_IMPORTS)
    assert {PLUGIN_IMPORTS[m] for m in third_party} <= set(_requirement_names(plugin["dependencies"]))
