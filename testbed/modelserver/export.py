"""Deterministic SavedModels made here with TensorFlow, never downloaded.

    python -m testbed.modelserver.export DIR   # exports every model below DIR (once)

Each model is a small ``tf.Module`` with one ``serving_default`` signature on a batch of
scalars; the variants differ in exactly one way, so tests can name what changed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Models exported into a cache folder per TensorFlow version, shared by every test run.
CACHE = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy")) / "models"

HALF_PLUS_TWO = "half_plus_two"  # y = 0.5x + 2
HALF_PLUS_THREE = "half_plus_three"  # y = 0.5x + 3
HALF_PLUS_TWO_AGAIN = "half_plus_two_again"  # the same function, exported again
INPUT_RENAMED = "input_renamed"  # input "x" is called "inputs"
INPUT_DOUBLE = "input_double"  # input "x" is a DT_DOUBLE
OUTPUT_ADDED = "output_added"  # a second output "doubled" = 2x
OUTPUT_REMOVED = "output_removed"  # output "y" is called "z": "y" is gone
FAILS_FROM_FIVE = "fails_from_five"  # 0.5x + 2, but tf.debugging refuses any x >= 5
NOT_A_SAVEDMODEL = "not_a_savedmodel"  # a folder without saved_model.pb
ALL = (
    HALF_PLUS_TWO,
    HALF_PLUS_THREE,
    HALF_PLUS_TWO_AGAIN,
    INPUT_RENAMED,
    INPUT_DOUBLE,
    OUTPUT_ADDED,
    OUTPUT_REMOVED,
    FAILS_FROM_FIVE,
    NOT_A_SAVEDMODEL,
)
# Inputs at or above this make FAILS_FROM_FIVE answer with TensorFlow's InvalidArgument.
FAILING_FROM = 5.0


def cache_dir() -> Path:
    """Where this TensorFlow version's exports live (TensorFlow is imported to name it)."""
    import tensorflow as tf

    return CACHE / f"tf-{tf.__version__}"


def _module(
    fn: Callable[[Any], dict[str, Any]], input_name: str = "x", dtype: str = "float32"
) -> tuple[Any, Any]:
    import tensorflow as tf

    module = tf.Module()
    spec = tf.TensorSpec([None], getattr(tf, dtype), name=input_name)
    module.serve = tf.function(lambda x: fn(x), input_signature=[spec])
    return module, module.serve


def _builders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    import tensorflow as tf

    def linear(offset: float) -> Callable[[Any], dict[str, Any]]:
        return lambda x: {"y": 0.5 * x + offset}

    def fails_from_five(x: Any) -> dict[str, Any]:
        check = tf.debugging.assert_less(x, tf.constant(FAILING_FROM), message="input must be below 5")
        with tf.control_dependencies([check]):
            return {"y": 0.5 * x + 2.0}

    return {
        HALF_PLUS_TWO: lambda: _module(linear(2.0)),
        HALF_PLUS_THREE: lambda: _module(linear(3.0)),
        HALF_PLUS_TWO_AGAIN: lambda: _module(linear(2.0)),
        INPUT_RENAMED: lambda: _module(linear(2.0), input_name="inputs"),
        INPUT_DOUBLE: lambda: _module(lambda x: {"y": 0.5 * x + 2.0}, dtype="float64"),
        OUTPUT_ADDED: lambda: _module(lambda x: {"y": 0.5 * x + 2.0, "doubled": 2.0 * x}),
        OUTPUT_REMOVED: lambda: _module(lambda x: {"z": 0.5 * x + 2.0}),
        FAILS_FROM_FIVE: lambda: _module(fails_from_five),
    }


def export_all(root: Path | None = None) -> Path:
    """Export every model below ``root`` (default: the cache), skipping those present.
    Test processes running side by side may export at once: a lock on the folder lets one
    export while the others wait, then find the models present."""
    root = root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _export_missing(root)
    return root


def _export_missing(root: Path) -> None:
    import tensorflow as tf

    for name, build in _builders().items():
        target = root / name
        if (target / "saved_model.pb").exists():
            continue
        staging = root / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        module, serve = build()
        tf.saved_model.save(module, str(staging), signatures={"serving_default": serve})
        staging.rename(target)  # whole or absent: a crash never leaves half a model
    broken = root / NOT_A_SAVEDMODEL
    broken.mkdir(exist_ok=True)
    (broken / "model.onnx").write_bytes(b"not a TensorFlow model")


def ensure_exported(python: str = sys.executable) -> Path:
    """The cache folder with every model, exported in a subprocess when any is missing, so
    the caller needs no TensorFlow import of its own."""
    import subprocess

    marker = CACHE / "latest"
    if marker.exists():
        root = Path(marker.read_text().strip())
        if all((root / n).exists() for n in ALL):
            return root
    out = subprocess.run(
        [python, "-m", "testbed.modelserver.export"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    return Path(out.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    root = export_all(Path(argv[0]) if argv else None)
    if not argv:
        (CACHE / "latest").write_text(str(root))
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
