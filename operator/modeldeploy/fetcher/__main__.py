"""``modeldeploy-fetch <storageUri> <version> <model dir>``: the init container's entry point.

Speaks ``api.fetch_protocol``: exits with the digest or the reason, one line on stderr and
in the termination message, where the operator reads it. Whatever goes wrong, that line is
all it writes: never a traceback (which would quote the storage URI, credentials and all, into
the log the kubelet falls back to), and never past the fetch's deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from ..api import fetch_protocol as protocol
from ..api.redaction import redact, secrets_of
from .errors import DeadlinePassed, FetchError
from .fetch import fetch
from .limits import Limits, deadline_message


def _report(line: str, secrets: list[str]) -> None:
    line = redact(line, secrets)
    print(line, file=sys.stderr, flush=True)
    path = Path(os.environ.get(protocol.TERMINATION_LOG_ENV, protocol.TERMINATION_LOG))
    # Outside Kubernetes there is no termination log; stderr has the line.
    with contextlib.suppress(OSError):
        path.write_text(line + "\n")


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Raise DeadlinePassed in this thread after ``seconds``, whatever it is blocked in (a
    socket read that trickles a byte at a time never times out by itself). The timer and
    handler in place before (a test runner's own timeout) are put back afterwards."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise DeadlinePassed(deadline_message(seconds))

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


def _run(request: protocol.FetchRequest) -> tuple[int, str]:
    """The exit code and the one line reporting the fetch."""
    try:
        with _alarm(Limits.from_env(os.environ).deadline_seconds):
            result = fetch(request.storage_uri, request.version, Path(request.model_dir))
    except (FetchError, DeadlinePassed) as exc:
        return protocol.EXIT_FAILED, protocol.failure_message(str(exc))
    except Exception as exc:  # a bug or a case not foreseen: still one line, never a traceback
        return protocol.EXIT_FAILED, protocol.failure_message(f"unexpected {type(exc).__name__}: {exc}")
    return protocol.EXIT_FETCHED, result.summary(request.storage_uri, request.version)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    secrets = [secret for arg in args for secret in secrets_of(arg)]
    try:
        request = protocol.parse_args(args)
    except protocol.UsageError as exc:
        _report(str(exc), secrets)
        return protocol.EXIT_USAGE
    except protocol.ArgumentError as exc:
        _report(protocol.failure_message(str(exc)), secrets)
        return protocol.EXIT_FAILED
    code, line = _run(request)
    _report(line, secrets)
    return code


if __name__ == "__main__":
    sys.exit(main())
