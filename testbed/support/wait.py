"""Polling with a deadline: the one way tests and tools wait (never a bare sleep)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from kubernetes.client.exceptions import ApiException

T = TypeVar("T")


def answers_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a local health or readiness endpoint answers 200 now (not reachable: False)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with its last value at the deadline.
    The value returned is that truthy one, so its type leaves out the None or False a
    predicate answers with while it waits."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except ApiException as exc:
            last = f"ApiException {exc.status}: {exc.reason}"
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")
        time.sleep(interval)


def holds_for(
    predicate: Callable[[], object], seconds: float, interval: float = 0.25, what: str = ""
) -> None:
    """Assert ``predicate`` stays truthy for ``seconds``: for things that must NOT happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        assert value, f"{what or predicate} stopped holding: {value!r}"
        time.sleep(interval)
