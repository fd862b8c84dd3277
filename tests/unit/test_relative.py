"""The canary judged against the stable: verdicts, figures and messages of the relative
check, the spec's bounds, and a check that reads both versions from real HTTP servers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from modeldeploy.api.spec import Analysis, ModelDeploymentSpec, PrometheusSource, RelativeAnalysis
from modeldeploy.api.status import CheckResult, Counters, Verdict
from modeldeploy.probes import analysis as probe_analysis
from modeldeploy.probes.providers import DirectScrape, StableTarget, Target
from modeldeploy.rollout import relative
from modeldeploy.rollout.types import Check
from modeldeploy.rollout.window import Window
from tests.support.scripted_http import ScriptedServer

from .objects import SAMPLE_SPEC

pytestmark = pytest.mark.timeout(60)
NOW = "2026-01-01T00:00:10Z"
SUCCESS = RelativeAnalysis(success_rate_max_drop=0.005, confidence=0.95)
LATENCY = RelativeAnalysis(latency_p99_max_ratio=1.2, confidence=0.95)
# Bounds in microseconds; 995 of the stable's 1000 requests within 100 ms: its p99 bucket.
STABLE_HISTOGRAM = {"50000": 500.0, "100000": 995.0, "150000": 1000.0, "+Inf": 1000.0}


def window(requests: float, errors: float, buckets: dict[str, float] | None = None) -> Window:
    return Window(requests, errors, None, buckets or {})


def test_a_canary_failing_two_percent_under_a_clean_stable_fails() -> None:
    comparison = relative.compare(window(1000, 20), window(3000, 0), SUCCESS)
    assert comparison.check.result is Verdict.FAILED
    assert comparison.check.canary_success_rate == pytest.approx(0.98)
    assert comparison.check.stable_success_rate == 1.0
    # Agresti-Caffo: z = 3.44 for these counts.
    assert comparison.check.p_value == pytest.approx(0.000289, rel=0.01)
    assert comparison.message == ("canary 2% errors vs stable 0%: worse by more than 0.5%, p < 0.001 at 0.95")


def test_twenty_requests_cannot_tell_and_stay_inconclusive() -> None:
    comparison = relative.compare(window(20, 0), window(3000, 0), SUCCESS)
    assert comparison.check.result is Verdict.INCONCLUSIVE
    assert "too few requests" in comparison.message
    one_error = relative.compare(window(20, 1), window(3000, 0), SUCCESS)
    assert one_error.check.result is Verdict.INCONCLUSIVE


def test_a_canary_as_good_as_the_stable_passes_once_the_counts_show_it() -> None:
    comparison = relative.compare(window(5000, 1), window(10000, 2), SUCCESS)
    assert comparison.check.result is Verdict.PASSED
    assert comparison.check.p_value is not None
    assert comparison.check.p_value < 0.05
    assert "within 0.5%" in comparison.message


def test_upstream_errors_hitting_both_alike_do_not_fail_the_canary() -> None:
    # 3% errors on both: a fixed successRate.min of 0.99 would fail this canary.
    comparison = relative.compare(window(4000, 120), window(8000, 240), SUCCESS)
    assert comparison.check.result is not Verdict.FAILED


def test_a_higher_confidence_needs_more_evidence() -> None:
    counts = (window(200, 4), window(800, 0))
    assert relative.compare(
        *counts, RelativeAnalysis(success_rate_max_drop=0.005, confidence=0.95)
    ).check.result is (Verdict.FAILED)
    strict = RelativeAnalysis(success_rate_max_drop=0.005, confidence=0.99)
    assert relative.compare(*counts, strict).check.result is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("share", "shown"),
    [(0.0, "0%"), (0.0001, "0.01%"), (0.009, "0.9%"), (0.02, "2%"), (0.123, "12%"), (1.0, "100%")],
)
def test_shares_read_as_percents_never_in_exponent_form(share: float, shown: str) -> None:
    assert relative.percent(share) == shown


def test_no_stable_requests_is_inconclusive() -> None:
    comparison = relative.compare(window(1000, 500), window(0, 0), SUCCESS)
    assert comparison.check.result is Verdict.INCONCLUSIVE
    assert "no stable requests" in comparison.message


def test_no_stable_window_yet_is_inconclusive() -> None:
    comparison = relative.compare(window(1000, 500), None, SUCCESS)
    assert comparison.check.result is Verdict.INCONCLUSIVE
    assert comparison.message == relative.NO_STABLE_BASELINE


def test_a_slower_canary_fails_the_latency_ratio_bucket_by_bucket() -> None:
    slower = {"50000": 0.0, "100000": 300.0, "150000": 1000.0, "+Inf": 1000.0}
    comparison = relative.compare(window(1000, 0, slower), window(1000, 0, STABLE_HISTOGRAM), LATENCY)
    assert comparison.check.result is Verdict.FAILED
    assert comparison.check.latency_p_value is not None
    assert comparison.check.latency_p_value < 0.001
    assert comparison.message.startswith(
        "latency: 70% of canary requests over 100ms (1.2 x stable p99 bucket 100ms) vs 1% allowed: slower"
    )
    # At 1.5 x the bound moves to the 150 ms bucket, which holds every canary request.
    lenient = RelativeAnalysis(latency_p99_max_ratio=1.5)
    assert relative.compare(
        window(1000, 0, slower), window(1000, 0, STABLE_HISTOGRAM), lenient
    ).check.result is (Verdict.PASSED)


def test_an_equally_fast_canary_passes_the_latency_ratio() -> None:
    same = {"50000": 500.0, "100000": 998.0, "150000": 1000.0, "+Inf": 1000.0}
    comparison = relative.compare(window(1000, 0, same), window(1000, 0, STABLE_HISTOGRAM), LATENCY)
    assert comparison.check.result is Verdict.PASSED
    # scipy.stats.binom(1000, 0.01).cdf(2)
    assert comparison.check.latency_p_value == pytest.approx(0.00267943199379151, rel=1e-8)
    assert comparison.check.canary_latency_p99_ms is not None
    assert comparison.check.stable_latency_p99_ms is not None


def test_a_compacted_canary_histogram_is_read_at_the_stable_bounds() -> None:
    # "100000" left out: its count equals the bound below it (compact()).
    compacted = {"50000": 1000.0, "+Inf": 1000.0}
    comparison = relative.compare(window(1000, 0, compacted), window(1000, 0, STABLE_HISTOGRAM), LATENCY)
    assert comparison.check.result is Verdict.PASSED


def test_a_stable_p99_above_the_largest_bucket_cannot_be_compared() -> None:
    beyond = {"50000": 500.0, "+Inf": 1000.0}
    comparison = relative.compare(window(1000, 0, beyond), window(1000, 0, beyond), LATENCY)
    assert comparison.check.result is Verdict.INCONCLUSIVE
    assert "above the largest bucket" in comparison.message


def test_no_histogram_is_inconclusive_never_passed() -> None:
    comparison = relative.compare(window(1000, 0), window(1000, 0, STABLE_HISTOGRAM), LATENCY)
    assert comparison.check.result is Verdict.INCONCLUSIVE
    assert "no canary histogram" in comparison.message


def test_both_tests_decide_together_the_worse_first() -> None:
    both = RelativeAnalysis(success_rate_max_drop=0.005, latency_p99_max_ratio=1.2)
    slower = {"50000": 0.0, "100000": 300.0, "150000": 1000.0, "+Inf": 1000.0}
    comparison = relative.compare(window(1000, 0, slower), window(1000, 0, STABLE_HISTOGRAM), both)
    assert comparison.check.result is Verdict.FAILED
    assert comparison.message.startswith("latency:")


def test_the_relative_verdict_joins_the_absolute_one() -> None:
    absolute = CheckResult(
        at=NOW, verdict=Verdict.PASSED, message="success rate 0.9800, p99 n/a over 1000 requests"
    )
    comparison = relative.compare(window(1000, 20), window(3000, 0), SUCCESS)
    result = relative.judged_with(absolute, comparison)
    assert result.verdict is Verdict.FAILED
    assert result.relative == comparison.check
    assert result.message.startswith("canary 2% errors vs stable 0%")
    assert result.message.endswith("over 1000 requests")
    failed = CheckResult(at=NOW, verdict=Verdict.FAILED, message="success rate 0.5 < 0.9")
    passing = relative.compare(window(5000, 1), window(10000, 2), SUCCESS)
    assert relative.judged_with(failed, passing).verdict is Verdict.FAILED


@pytest.mark.parametrize(
    ("relative_spec", "error"),
    [
        ({"confidence": 0.95}, "nothing to compare"),
        ({"successRateMaxDrop": 0.01, "confidence": 0.5}, "0.5, 0.9999"),
        ({"successRateMaxDrop": 0.01, "confidence": 1.0}, "0.5, 0.9999"),
        ({"successRateMaxDrop": 1.5}, "successRateMaxDrop"),
        ({"successRateMaxDrop": -0.1}, "successRateMaxDrop"),
        ({"latencyP99MaxRatio": 0.9}, "latencyP99MaxRatio"),
    ],
)
def test_bad_relative_specs_are_refused(relative_spec: dict[str, Any], error: str) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"]["analysis"] = {"relative": relative_spec}
    with pytest.raises(ValidationError, match=error):
        ModelDeploymentSpec.model_validate(spec)


def test_a_relative_check_with_an_immediate_rollout_is_refused() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Immediate", "analysis": {"relative": {"successRateMaxDrop": 0.01}}}
    with pytest.raises(ValidationError, match="needs strategy Canary"):
        ModelDeploymentSpec.model_validate(spec)


@pytest.fixture
def prometheus() -> Iterator[ScriptedServer]:
    server = ScriptedServer(default=json.dumps({"status": "success", "data": {"result": []}}).encode())
    yield server
    server.stop()


def vector(*series: tuple[dict[str, str], float]) -> bytes:
    result = [{"metric": labels, "value": [0, str(value)]} for labels, value in series]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()


def test_a_check_reads_both_versions_from_prometheus_over_the_same_window(prometheus: ScriptedServer) -> None:
    for version, requests, errors, within in (("2", 1000, 20, 300), ("1", 3000, 0, 2985)):
        selector = f'model_name="mnist",namespace="ml",version="{version}"'
        prometheus.queries[f'{selector},status!="OK"}}[60s]'] = vector(({}, errors))
        prometheus.queries[f"increase(:tensorflow:serving:request_latency_bucket{{{selector}}}[60s]"] = (
            vector(({"le": "100000"}, within), ({"le": "150000"}, requests), ({"le": "+Inf"}, requests))
        )
        prometheus.queries[f"request_count{{{selector}}}[60s]"] = vector(({}, requests))
    spec = Analysis(
        min_requests=100,
        prometheus=PrometheusSource(address=prometheus.address),
        relative=RelativeAnalysis(success_rate_max_drop=0.005, latency_p99_max_ratio=1.2),
    )
    target = Target("ml", "mnist", 2, (), 30.0, 60.0, stable=StableTarget(1, ()))
    check = probe_analysis.check(spec, target, None, NOW)
    assert check.result.verdict is Verdict.FAILED
    assert check.result.relative is not None
    assert check.result.relative.canary_success_rate == pytest.approx(0.98)
    assert check.result.relative.stable_success_rate == 1.0
    assert check.result.relative.latency_p_value is not None
    assert check.result.relative.latency_p_value < 0.001
    assert "canary 2% errors vs stable 0%" in check.result.message
    assert check.stable_counters is None  # Prometheus keeps nothing between checks


METRICS = (
    ':tensorflow:serving:request_count{{model_name="mnist",status="OK"}} {ok}\n'
    ':tensorflow:serving:request_count{{model_name="mnist",status="INTERNAL"}} {errors}\n'
)


def test_the_pods_scrape_starts_the_stable_counters_then_compares(replies: ScriptedServer) -> None:
    replies.bodies["/monitoring/prometheus/metrics"] = METRICS.format(ok=100, errors=0).encode()
    spec = Analysis(min_requests=0, relative=SUCCESS)
    pods = (("pod", "127.0.0.1"),)

    def run(stable_previous: Counters | None, previous: Counters | None) -> Check:
        target = Target("ml", "mnist", 2, pods, 30.0, stable=StableTarget(1, pods, stable_previous))
        return probe_analysis.check(spec, target, previous, NOW, DirectScrape(port=replies.port))

    first = run(None, None)
    assert first.result.verdict is Verdict.INCONCLUSIVE
    assert relative.NO_STABLE_BASELINE in first.result.message
    assert first.stable_counters is not None
    assert first.stable_counters.requests == 100
    replies.bodies["/monitoring/prometheus/metrics"] = METRICS.format(ok=20100, errors=0).encode()
    second = run(first.stable_counters, first.counters)
    assert second.result.relative is not None
    assert second.result.relative.result is Verdict.PASSED  # 20000 clean requests on each side
    assert second.stable_counters is not None
    assert second.stable_counters.requests == 20100


@pytest.fixture
def replies() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()
