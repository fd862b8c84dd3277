"""``modeldeploy-fetch <storageUri> <version> <model dir>``: the init container's entry point.

Exit 0 with the digest, or 1 with the reason, each as one line on stderr and in
the termination message, where the operator reads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from ..api.redaction import redact
from .errors import FetchError
from .fetch import fetch

TERMINATION_LOG = "/dev/termination-log"


def _report(line: str) -> None:
    line = redact(line)
    print(line, file=sys.stderr, flush=True)
    path = Path(os.environ.get("MODELDEPLOY_TERMINATION_LOG", TERMINATION_LOG))
    # Outside Kubernetes there is no termination log; stderr has the line.
    with contextlib.suppress(OSError):
        path.write_text(line + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        _report("usage: modeldeploy-fetch <storageUri> <version> <model dir>")
        return 2
    uri, version_text, model_dir = args
    try:
        if not version_text.isdigit():
            raise FetchError(f"version must be a whole number, got {version_text!r}")
        result = fetch(uri, int(version_text), Path(model_dir))
    except FetchError as exc:
        _report(f"fetch failed: {exc}")
        return 1
    _report(result.summary(uri, int(version_text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
