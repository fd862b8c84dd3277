"""How the suite is split over pytest-xdist workers (`make test` runs ``-n 2``).

Most of a test's time is spent waiting for pods, rollouts and deadlines, not computing, so a
second worker shortens the wall time even on two cores. Each worker is a pytest session of
its own with its own control plane (ports and pod addresses are drawn at random), so tests
in different workers never share a cluster. A file stays on one worker, keeping its module
fixtures to one set-up; the real node's tests share one machine-wide pod bridge, so they
all go to one worker, and first, because they are the longest group.

The two workers share two cores. The real node's tests build images, start containers and
build the release packages: minutes of CPU at a time. The tests that judge a canary by its
latency against the stable's resolve one histogram bucket, and a stable slowed by a busy
machine crosses it, so they run on the node group's worker, after it, never beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
# Groups that run first: the longest, so that no worker is left with a long tail.
FIRST = ("node", "integration")


# Files that share the real node's unit of work, so that they never run beside it.
BESIDE_NODE = ("integration/test_relative.py",)


def scope_of(nodeid: str) -> str:
    """The unit of work of a test: every real-node test shares one, and so do the files that
    must not run beside them; the others have their file."""
    path = nodeid.split("::", 1)[0]
    local = path.removeprefix("tests/")
    if local.startswith("node/") or local in BESIDE_NODE:
        return "node"
    return path


def rank(item: pytest.Item) -> int:
    top = Path(item.path).resolve().relative_to(TESTS).parts[0]
    return FIRST.index(top) if top in FIRST else len(FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A stable sort keeps each file's own order; every worker collects the same order, and
    # xdist hands out units of work in the order it first meets them.
    items.sort(key=rank)


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # the suite also runs serially, without pytest-xdist
    pass
else:

    class ScopeByFile(LoadScopeScheduling):
        """xdist's per-scope scheduling, with `scope_of` deciding what a scope is.

        xdist's own groups (``--dist loadgroup``) rewrite a test's node id, which newer
        pytest computes afresh, so they are not relied on.
        """

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    # Optional: with xdist installed but not loaded (``-p no:xdist``, as make mutation runs
    # the unit tests) pytest would otherwise refuse a hook it has no spec for.
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> ScopeByFile:
        return ScopeByFile(config, log)
