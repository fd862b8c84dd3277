"""A small benchmark run in the suite: the harness works and the invariants hold (no timings asserted)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench.run import run, table

pytestmark = pytest.mark.timeout(300)


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    results = run(n=6, m=2, idle=3, replicas=1, workers=2, root=tmp_path)
    assert math.isfinite(results["ratio_total"])
    assert results["ratio_total"] > 0
    # A converged operator writes nothing at all.
    assert results["api"]["idle_writes"] == 0
    # Every resource's status was written at least once, and each child applied.
    assert results["api"]["status_writes_per_object"] >= 1
    assert results["api"]["per_object_by_verb"].get("patch", 0) >= 3
    assert results["footprint"]["peak_rss_mib"] > 0
    # Both canaries passed both steps: two step transitions each were timed.
    assert results["canary_reaction"]["transitions"] == 2 * 2
    assert "ratio operator/floor" in table(results)
