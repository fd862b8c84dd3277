"""`make release VERSION=x.y.z`: a release's artefacts in dist/, built from the committed tree.

    python -m hack.release 1.2.3 [DIST]

dist/ receives, every name carrying the version:
  modeldeploy-operator-X.tar, modeldeploy-fetcher-X.tar   images built by buildah from the
                                  Dockerfiles, docker-archive tarballs tagged X
  install.yaml                    CRD, RBAC and the operator (manifests/ as kustomize renders
                                  them), both images pinned to X
  modeldeploy-X.tgz               the Helm chart: version and appVersion X, its images pinned to X
  kubectl_modeldeploy-X-*.whl     the kubectl plugin alone: modeldeploy.cli and modeldeploy.api
  modeldeploy-X-*.whl             the operator's wheel

Everything is built from a copy of the files git tracks, with the version written into it,
so the release never depends on what else lies in the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from testbed.cluster.dockerfile_images import buildah_build
from testbed.cluster.operator_manifests import operator_container, rendered_manifests
from testbed.support.kube import kubectl_path

REPO = Path(__file__).resolve().parents[1]
# semver.org's own expression for a version (no leading "v").
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# (Dockerfile in the tree, image repository): the repositories manifests/ and the chart name.
IMAGES = {
    "operator": ("Dockerfile", "docker.io/modeldeploy/operator"),
    "fetcher": ("serving_image/fetcher.Dockerfile", "docker.io/modeldeploy/fetcher"),
}
FETCHER_ENV = "MODELDEPLOY_FETCHER_IMAGE"
CHART = Path("charts") / "modeldeploy"


@dataclass(frozen=True)
class Release:
    version: str
    images: dict[str, Path]  # "operator", "fetcher" -> docker-archive tarball
    install_yaml: Path
    chart: Path
    plugin_wheel: Path
    operator_wheel: Path

    def image_name(self, which: str) -> str:
        return f"{IMAGES[which][1]}:{self.version}"


def refusal(version: str, repo: Path = REPO) -> str | None:
    """Why ``version`` of ``repo`` cannot be released (one line), or None."""
    if not SEMVER.match(version):
        return f"VERSION={version!r} is not a semantic version (x.y.z, e.g. VERSION=1.2.3)"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    if dirty.strip():
        return f"the git tree has uncommitted changes ({len(dirty.splitlines())} paths): commit or stash them"
    return None


def stage(repo: Path, version: str, into: Path) -> Path:
    """A copy of the files git tracks in ``repo``, with ``version`` written where one is kept."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = repo / name
        if source.is_file():  # a tracked file deleted in the checkout is not released
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    for pyproject in (into / "pyproject.toml", into / "plugin" / "pyproject.toml"):
        _replace_once(pyproject, r'^version = "[^"]*"$', f'version = "{version}"')
    _replace_once(
        into / "operator" / "modeldeploy" / "__init__.py",
        r'^__version__ = "[^"]*"$',
        f'__version__ = "{version}"',
    )
    return into


def _replace_once(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"{path}: no line matches {pattern}")
    path.write_text(text)


def build_images(source: Path, version: str, dist: Path) -> dict[str, Path]:
    images = {}
    for which, (dockerfile, repository) in IMAGES.items():
        archive = dist / f"modeldeploy-{which}-{version}.tar"
        print(f"==> {repository}:{version} from {dockerfile} (buildah)", flush=True)
        buildah_build(source / dockerfile, f"{repository}:{version}", source, archive)
        images[which] = archive
    return images


def pinned(reference: str, version: str) -> str:
    """``reference`` (repository:tag) with its tag replaced by ``version``."""
    repository = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    return f"{repository}:{version}"


def install_documents(source: Path, version: str, kubectl: Path) -> list[dict[str, Any]]:
    """manifests/ rendered by kustomize, the operator's and the fetcher's images pinned."""
    documents = rendered_manifests(kubectl, source / "manifests")
    container = operator_container(documents)
    container["image"] = pinned(container["image"], version)
    fetcher = next(e for e in container["env"] if e["name"] == FETCHER_ENV)
    fetcher["value"] = pinned(fetcher["value"], version)
    return documents


def write_install_yaml(source: Path, version: str, dist: Path, kubectl: Path) -> Path:
    path = dist / "install.yaml"
    header = f"# modeldeploy {version}: kubectl apply -f install.yaml\n"
    path.write_text(header + yaml.safe_dump_all(install_documents(source, version, kubectl), sort_keys=False))
    return path


def pin_chart_values(chart: Path, version: str) -> None:
    """The chart's values.yaml with its image tags set to ``version``, comments kept."""
    values = chart / "values.yaml"
    text = values.read_text()
    text, tags = re.subn(
        r'^(image:\n(?:[ \t]+.*\n)*?[ \t]+tag:[ \t]*)("[^"]*"|[^\s#]*)',
        rf'\g<1>"{version}"',
        text,
        flags=re.M,
    )
    text, fetchers = re.subn(
        r"^(fetcherImage:[ \t]*)(\S+)", lambda m: m[1] + pinned(m[2], version), text, flags=re.M
    )
    written = yaml.safe_load(text)
    if (tags, fetchers) != (1, 1) or written["image"]["tag"] != version:
        raise ValueError(f"{values}: image.tag or fetcherImage not found where expected")
    values.write_text(text)


def package_chart(source: Path, version: str, dist: Path, helm: Path) -> Path:
    chart = source / CHART
    pin_chart_values(chart, version)
    subprocess.run(
        [str(helm), "package", str(chart), "--version", version, "--app-version", version, "-d", str(dist)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dist / f"modeldeploy-{version}.tgz"


def build_wheel(project: Path, dist: Path) -> Path:
    """The wheel of the Python project in ``project``, written to ``dist``."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, str(project)],
            check=True,
            capture_output=True,
            text=True,
        )
        (wheel,) = Path(out).glob("*.whl")
        target = dist / wheel.name
        target.unlink(missing_ok=True)
        shutil.move(wheel, target)
    return target


def helm_path() -> Path:
    """$HELM, else helm on PATH, else the one hack/tools/build.sh builds."""
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    found = shutil.which("helm")
    if found:
        return Path(found)
    from testbed.support.tools import tool

    return tool("helm")


def build_release(repo: Path, version: str, dist: Path) -> Release:
    """Every artefact of ``version`` from ``repo``'s tracked files, into ``dist``."""
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modeldeploy-release-") as work:
        source = stage(repo, version, Path(work))
        wheels = (build_wheel(source / "plugin", dist), build_wheel(source, dist))
        return Release(
            version=version,
            images=build_images(source, version, dist),
            install_yaml=write_install_yaml(source, version, dist, kubectl_path()),
            chart=package_chart(source, version, dist, helm_path()),
            plugin_wheel=wheels[0],
            operator_wheel=wheels[1],
        )


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    version = argv[1]
    reason = refusal(version)
    if reason is not None:
        print(f"make release: refused: {reason}", file=sys.stderr)
        return 1
    release = build_release(REPO, version, Path(argv[2]) if len(argv) == 3 else REPO / "dist")
    for artefact in (
        *release.images.values(),
        release.install_yaml,
        release.chart,
        release.plugin_wheel,
        release.operator_wheel,
    ):
        print(f"{artefact.stat().st_size / 1e3:12,.0f} kB  {artefact}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
