"""``modeldeploy-fetch <storageUri> <version> <model dir>``: the init container's entry point.

Speaks ``api.fetch_protocol``: exits with the digest or the reason, one line on stderr and
in the termination message, where the operator reads it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from ..api import fetch_protocol as protocol
from ..api.redaction import redact
from .errors import FetchError
from .fetch import fetch


def _report(line: str) -> None:
    line = redact(line)
    print(line, file=sys.stderr, flush=True)
    path = Path(os.environ.get(protocol.TERMINATION_LOG_ENV, protocol.TERMINATION_LOG))
    # Outside Kubernetes there is no termination log; stderr has the line.
    with contextlib.suppress(OSError):
        path.write_text(line + "\n")


def main(argv: list[str] | None = None) -> int:
    try:
        request = protocol.parse_args(sys.argv[1:] if argv is None else argv)
    except protocol.UsageError as exc:
        _report(str(exc))
        return protocol.EXIT_USAGE
    except protocol.ArgumentError as exc:
        _report(protocol.failure_message(str(exc)))
        return protocol.EXIT_FAILED
    try:
        result = fetch(request.storage_uri, request.version, Path(request.model_dir))
    except FetchError as exc:
        _report(protocol.failure_message(str(exc)))
        return protocol.EXIT_FAILED
    _report(result.summary(request.storage_uri, request.version))
    return protocol.EXIT_FETCHED


if __name__ == "__main__":
    sys.exit(main())
