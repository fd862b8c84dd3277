"""The project's own Dockerfiles built here, with no Docker engine and no registry.

buildah (Debian's, daemonless: vfs storage, chroot isolation) builds each Dockerfile as
a user's ``make images`` would. Their ``FROM python:3.11-slim`` is provided locally: a
base image assembled from Debian packages by debootstrap, holding what that image
promises the Dockerfiles: Python 3.11 and pip at ``/usr/local/bin``, packages installed
under ``/usr/local/lib/python3.11/site-packages`` (a virtual environment rooted at
``/usr/local``, so ``pip install --prefix`` and ``COPY ... /usr/local`` land where the
interpreter looks). ``RUN pip install`` steps fetch from PyPI, as they do for users.

Results are docker-archive tarballs that containerd imports, cached by the hash of
everything that goes into them.

    python -m testbed.cluster.dockerfile_images fetcher     # prints the tarball's path
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy")) / "images"
BASE_NAME = "docker.io/library/python:3.11-slim"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
PRODUCT_CONTEXT = ("pyproject.toml", "README.md", "operator")
# (Dockerfile, image name, what it COPYs from the build context): the names `make images`
# tags; the serving image of the tests is the TF Serving-compatible test double.
DOCKERFILES = {
    "fetcher": (
        REPO / "serving_image" / "fetcher.Dockerfile",
        "docker.io/modeldeploy/fetcher:0.1.0",
        PRODUCT_CONTEXT,
    ),
    "operator": (REPO / "Dockerfile", "docker.io/modeldeploy/operator:0.1.0", PRODUCT_CONTEXT),
    "modelserver": (
        REPO / "testbed" / "modelserver" / "Dockerfile",
        "docker.io/modeldeploy/modelserver-test:2.18.0",
        ("testbed/__init__.py", "testbed/modelserver"),
    ),
}


def _run(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def _digest(*parts: bytes) -> str:
    outer = hashlib.sha256()
    for part in parts:
        outer.update(hashlib.sha256(part).digest())
    return outer.hexdigest()[:20]


def base_image() -> Path:
    """``python:3.11-slim`` as the Dockerfiles use it, assembled from Debian packages."""
    key = _digest(
        DEBIAN_SUITE.encode(), " ".join(BASE_PACKAGES).encode(), json.dumps(BASE_ENV).encode(), b"2"
    )
    path = CACHE / f"base-{key}.tar"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work_name:
        work = Path(work_name)
        rootfs = work / "rootfs"
        _run(
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            DEBIAN_SUITE,
            str(rootfs),
            DEBIAN_MIRROR,
        )
        # The interpreter and pip at /usr/local/bin, packages under /usr/local/lib/...:
        # a virtual environment rooted at /usr/local.
        _run("chroot", str(rootfs), "/usr/bin/python3", "-m", "venv", "/usr/local")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        layer = work / "layer.tar"
        with tarfile.open(layer, "w") as tar:
            for entry in sorted(rootfs.iterdir()):
                if entry.name in ("dev", "proc", "sys"):
                    tar.add(entry, arcname=entry.name, recursive=False)  # mount points, empty
                else:
                    tar.add(entry, arcname=entry.name)
        _write_archive(path, layer, BASE_NAME, BASE_ENV)
    return path


def _write_archive(path: Path, layer: Path, name: str, env: dict[str, str]) -> None:
    layer_digest = hashlib.sha256(layer.read_bytes()).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"{k}={v}" for k, v in env.items()], "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
    }
    config_bytes = json.dumps(config).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]).encode()
    partial = path.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(layer, arcname="layer.tar")
        for member, content in ((config_name, config_bytes), ("manifest.json", manifest)):
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    partial.rename(path)


def _context_digest(dockerfile: Path, context: tuple[str, ...]) -> bytes:
    """Everything a build reads: the Dockerfile and the files it copies."""
    outer = hashlib.sha256(dockerfile.read_bytes())
    for item in context:
        root = REPO / item
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts and not f.name.endswith(".pyc"):
                outer.update(f"{f.relative_to(REPO)}\0".encode())
                outer.update(hashlib.sha256(f.read_bytes()).digest())
    return outer.digest()


def _host_trust() -> list[str]:
    """Volumes for RUN steps only (never copied into the image): this machine's CA bundle and
    pip settings. Its way to PyPI may pass a TLS-inspecting proxy that only the host trusts."""
    volumes = ["/etc/ssl/certs", "/etc/pip.conf"]
    return [f"--volume={v}:{v}:ro" for v in volumes if Path(v).exists()]


def buildah_build(dockerfile: Path, name: str, context: Path, archive: Path) -> None:
    """Build ``dockerfile`` over the local base image with buildah in storage of its own, and
    write the image, tagged ``name``, to the docker-archive tarball ``archive``."""
    base = base_image()
    with tempfile.TemporaryDirectory(dir=CACHE) as work_name:
        work = Path(work_name)
        storage = ["--storage-driver=vfs", f"--root={work / 'storage'}", f"--runroot={work / 'run'}"]
        _run("buildah", *storage, "pull", f"docker-archive:{base}")
        _run(
            "buildah",
            *storage,
            "bud",
            "--pull=never",
            "--isolation=chroot",
            "--layers=false",
            *_host_trust(),
            "-f",
            str(dockerfile),
            "-t",
            name,
            str(context),
        )
        archive.unlink(missing_ok=True)
        _run("buildah", *storage, "push", name, f"docker-archive:{archive}:{name}")


def build(which: str) -> Path:
    """The docker-archive tarball of one of the project's Dockerfiles, built with buildah."""
    dockerfile, name, context = DOCKERFILES[which]
    base = base_image()
    key = _digest(_context_digest(dockerfile, context), base.name.encode(), name.encode())
    path = CACHE / f"{which}-{key}.tar"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    buildah_build(dockerfile, name, REPO, partial)
    partial.rename(path)
    # Every change to the operator's code makes new fetcher and operator images (the code is
    # in them): keep only the newest of each, or the cache grows with every edit.
    for older in CACHE.glob(f"{which}-*.tar"):
        if older != path:
            older.unlink(missing_ok=True)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in DOCKERFILES:
        print(__doc__)
        return 2
    print(build(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
