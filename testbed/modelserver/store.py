"""The model store the tests, the demo and the benchmark serve from: one folder per model
with its numeric version folders, each a link to a SavedModel exported by ``export``.

The sample manifest reads ``file:///models-store/mnist``; the fleet is told that this
machine holds ``/models-store`` in such a store.
"""

from __future__ import annotations

from pathlib import Path

from . import export

NODE_PATH = "/models-store"
# version folder of mnist -> what that version is. Folder names are TF Serving's
# version rule at work: any all-digit name, "00000008" is version 8.
MNIST_VERSIONS = {
    "1": export.HALF_PLUS_TWO,
    "2": export.HALF_PLUS_THREE,
    "3": export.FAILS_FROM_FIVE,
    "4": export.INPUT_RENAMED,
    "5": export.OUTPUT_ADDED,
    "6": export.NOT_A_SAVEDMODEL,
    "7": export.HALF_PLUS_TWO_AGAIN,
    "00000008": export.INPUT_DOUBLE,
    "9": export.OUTPUT_REMOVED,
}


def make_store(root: Path, exports: Path | None = None) -> Path:
    """A store below ``root`` with ``mnist`` at the versions above; returns ``root``."""
    exports = exports or export.ensure_exported()
    mnist = root / "mnist"
    mnist.mkdir(parents=True, exist_ok=True)
    for folder, name in MNIST_VERSIONS.items():
        link = mnist / folder
        if not link.exists():
            link.symlink_to(exports / name, target_is_directory=True)
    return root
