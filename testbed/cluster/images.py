"""Container images made here, without a registry or a Docker engine: docker-archive
tarballs (``manifest.json``, a config JSON, layer tars) that ``ctr images import`` reads.

Each image is cached by the hash of what goes into it, so a warm run rebuilds nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy")) / "images"
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: one static binary, every applet
# Applets the node's small images link to busybox.
APPLETS = ("sh", "sleep", "cat", "ip", "httpd", "touch", "id", "echo", "ls", "wget", "mkdir")


@dataclass(frozen=True)
class Image:
    """An image to assemble: files (path in the image -> content) over nothing."""

    name: str  # e.g. modeldeploy.local/busybox:1 (imported under this reference)
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # path -> target
    directories: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: tuple[str, ...] = ("PATH=/bin",)

    def _layer(self) -> bytes:
        """One uncompressed layer tar, byte-for-byte the same for the same inputs."""
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted({*self.directories, "tmp"}):
                info = tarfile.TarInfo(path)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if path == "tmp" else 0o755
                tar.addfile(info)
            for path, content in sorted(self.files.items()):
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
            for path, target in sorted(self.symlinks.items()):
                info = tarfile.TarInfo(path)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
        return out.getvalue()

    def archive(self) -> Path:
        """The docker-archive tarball of this image, built once per content."""
        layer = self._layer()
        layer_digest = hashlib.sha256(layer).hexdigest()
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": list(self.entrypoint) or None,
                "Cmd": list(self.cmd) or None,
                "User": self.user,
                "Env": list(self.env),
            },
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        }
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = hashlib.sha256(config_bytes).hexdigest()
        key = hashlib.sha256(f"{self.name}\0{config_digest}".encode()).hexdigest()[:20]
        path = CACHE / f"{key}.tar"
        if path.exists():
            return path
        CACHE.mkdir(parents=True, exist_ok=True)
        manifest = [
            {
                "Config": f"{config_digest}.json",
                "RepoTags": [self.name],
                "Layers": [f"{layer_digest}/layer.tar"],
            }
        ]
        partial = path.with_suffix(".partial")
        with tarfile.open(partial, mode="w") as tar:
            for member, content in (
                (f"{config_digest}.json", config_bytes),
                (f"{layer_digest}/layer.tar", layer),
                ("manifest.json", json.dumps(manifest).encode()),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        partial.rename(path)
        return path


def busybox_image(name: str = "modeldeploy.local/busybox:1", **config: object) -> Image:
    """A tiny image: busybox and its applets under /bin."""
    return Image(
        name=name,
        files={"bin/busybox": BUSYBOX.read_bytes()},
        symlinks={f"bin/{applet}": "busybox" for applet in APPLETS},
        directories=("bin",),
        **config,  # type: ignore[arg-type]
    )


def pause_image() -> Image:
    """The pod sandbox's image: only sleeps (containerd stops sandboxes with SIGKILL)."""
    return busybox_image("modeldeploy.local/pause:1", entrypoint=("/bin/sleep", "2147483647"))
