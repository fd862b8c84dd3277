"""The real consumers of the integration files (helm, kstatus, Argo CD's Lua VM), built from
Go modules by hack/tools/build.sh on first use and cached; a build that fails fails the test."""

from __future__ import annotations

import functools
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "tools" / "build.sh"
# Argo CD's resource customisations of ModelDeployment: health.lua, actions/.
ARGOCD_SCRIPTS = REPO / "integrations" / "argocd" / "serving.modeldeploy.dev" / "ModelDeployment"


@functools.cache
def tools_bin() -> Path:
    out = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True).stdout
    return Path(out.strip().splitlines()[-1])


def tool(name: str) -> Path:
    path = tools_bin() / name
    assert path.exists(), f"{name} missing from {path.parent}: run bash hack/tools/build.sh"
    return path


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """helm against ``kubeconfig``, with its caches and config (and client-go's discovery
    cache, under $HOME) in a temporary folder: never the repository or the user's home."""
    home = Path(tempfile.gettempdir()) / "modeldeploy-helm"
    env = {
        "HOME": str(home),
        **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
    }
    result = subprocess.run(
        [str(tool("helm")), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def kstatus(obj: dict[str, Any]) -> dict[str, str]:
    """What cli-utils' kstatus computes for ``obj``: {"status": ..., "message": ...}."""
    result = subprocess.run(
        [str(tool("kstatus"))], input=json.dumps(obj), capture_output=True, text=True, check=True, timeout=30
    )
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


def run_lua(script: Path, obj: dict[str, Any]) -> Any:
    """Run an Argo CD resource customisation script on ``obj``; what it returns."""
    result = subprocess.run(
        [str(tool("luarun")), str(script)], input=json.dumps(obj), capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        raise AssertionError(f"{script.name} failed: {result.stderr}")
    return json.loads(result.stdout)
