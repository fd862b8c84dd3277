"""The edges of the interval verdict and of the metrics it judges: each test holds a guard
that mutation testing (make mutation) found no test holding."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api.spec import Analysis, LatencyThreshold, ShareThreshold
from modeldeploy.api.status import Counters, PodCounters, Verdict
from modeldeploy.rollout import analysis
from modeldeploy.rollout.metrics import (
    MetricsFormatError,
    compact,
    expand,
    parse_exposition,
    pod_difference,
    pods_of,
    quantile,
    totals,
    window_counts,
    with_baselines,
)
from modeldeploy.rollout.window import Window

pytestmark = pytest.mark.timeout(30)
NOW = "2026-01-01T00:00:10Z"
SPEC = Analysis(
    min_requests=10, success_rate=ShareThreshold(min=0.95), latency_p99_ms=LatencyThreshold(max=250)
)
COUNT = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"


def test_exactly_min_requests_is_judged() -> None:
    result = analysis.evaluate(Window(10, 0, 5.0), SPEC, NOW)
    assert result.verdict is Verdict.PASSED, result.message
    one = Analysis(min_requests=1, success_rate=ShareThreshold(min=0.95))
    assert analysis.evaluate(Window(1, 0, None), one, NOW).verdict is Verdict.PASSED


def test_the_thresholds_themselves_pass() -> None:
    assert analysis.evaluate(Window(100, 5, 250.0), SPEC, NOW).verdict is Verdict.PASSED


def test_every_request_failed_is_a_count_and_fails() -> None:
    result = analysis.evaluate(Window(100, 100, 5.0), SPEC, NOW)
    assert result.verdict is Verdict.FAILED, result.message


def test_no_requests_under_min_requests_zero_names_one_as_the_least() -> None:
    spec = Analysis(min_requests=0, success_rate=ShareThreshold(min=0.95))
    result = analysis.evaluate(Window(0, 0, None), spec, NOW)
    assert (result.verdict, result.message) == (Verdict.INCONCLUSIVE, "0 request(s) < minRequests 1")


def test_a_fraction_of_an_error_below_zero_is_not_a_count() -> None:
    result = analysis.evaluate(Window(100, -0.5, 5.0), SPEC, NOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "not finite counts" in result.message


def test_the_figures_kept_are_rounded_as_the_status_shows_them() -> None:
    # Prometheus's increase() answers fractions of a request.
    assert analysis.evaluate(Window(100.125, 0, 5.0), SPEC, NOW).requests == 100.125
    assert analysis.evaluate(Window(100.1234, 0, 5.0), SPEC, NOW).requests == 100.123
    result = analysis.evaluate(Window(30, 10, 5.125), SPEC, NOW)
    assert (result.success_rate, result.latency_p99_ms) == (0.6667, 5.125)
    result = analysis.evaluate(Window(30, 10, 5.1234), SPEC, NOW)
    assert result.latency_p99_ms == 5.123


def test_typed_histograms_and_every_error_status_are_read() -> None:
    text = "\n".join(
        [
            f"# TYPE {COUNT} counter",
            f'{COUNT}{{model_name="mnist",status="OK"}} 80',
            f'{COUNT}{{model_name="mnist",status="UNAVAILABLE"}} 15',
            f'{COUNT}{{model_name="mnist",status="INTERNAL"}} 5',
            # Another model whose name sorts before ours: not counted.
            f'{COUNT}{{model_name="aaa",status="OK"}} 1000',
            f"# TYPE {LATENCY} histogram",
            f'{LATENCY}_bucket{{model_name="mnist",le="1000"}} 60',
            f'{LATENCY}_bucket{{model_name="mnist",le="+Inf"}} 100',
            f'{LATENCY}_count{{model_name="mnist"}} 100',
            f'{LATENCY}_sum{{model_name="mnist"}} 12345',
        ]
    )
    counters = parse_exposition(text, "mnist")
    assert (counters.requests, counters.errors) == (100, 20)
    assert counters.buckets == {"1000": 60, "+Inf": 100}


def test_an_unreadable_exposition_quotes_80_characters_of_the_parser() -> None:
    text = f'{COUNT}{{model_name="mnist",status="OK"}} {"x" * 200}\n'
    with pytest.raises(ValueError, match="could not convert") as parser:
        list(text_string_to_metric_families(text))
    assert len(str(parser.value)) > 80
    with pytest.raises(MetricsFormatError) as refused:
        parse_exposition(text, "mnist")
    assert str(refused.value) == f"the metrics cannot be parsed: {str(parser.value)[:80]}"


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        (f'{COUNT}{{model_name="mnist",status="OK"}} -0.5', "not a finite count"),
        (f'{LATENCY}_bucket{{model_name="mnist",le="fast"}} 5', "bucket bound that is not a number"),
    ],
)
def test_samples_that_are_not_counts_make_the_scrape_unreadable(sample: str, why: str) -> None:
    with pytest.raises(MetricsFormatError, match=why):
        parse_exposition(sample + "\n", "mnist")


def test_expand_gives_bounds_below_the_first_kept_one_nothing() -> None:
    assert expand({"10": 5.0, "+Inf": 5.0}, ["1", "10", "+Inf"]) == {"1": 0.0, "10": 5.0, "+Inf": 5.0}


def test_kept_pod_counts_that_are_not_pairs_are_left_out() -> None:
    assert pods_of(Counters(pod_counts={"a": [1.0, 2.0, 3.0], "b": [1.0], "c": [4.0, 1.0]})) == {
        "c": PodCounters(requests=4, errors=1)
    }


def test_compact_keeps_a_first_bucket_of_one_and_drops_a_repeated_signed_bound() -> None:
    assert compact({"10": 1.0, "100": 1.0, "+Inf": 1.0}) == {"10": 1.0, "+Inf": 1.0}
    assert compact({"1": 2.0, "+5": 2.0, "+Inf": 2.0}) == {"1": 2.0, "+Inf": 2.0}
    # In bound order, whatever order the buckets came in.
    assert compact({"+Inf": 5.0, "10": 5.0, "1": 2.0}) == {"1": 2.0, "10": 5.0, "+Inf": 5.0}


def test_a_pod_that_served_nothing_since_counts_nothing() -> None:
    same = PodCounters(requests=100, errors=3, buckets={"10": 80, "+Inf": 100})
    assert pod_difference(same, same) == PodCounters(requests=0, errors=0, buckets={"10": 0, "+Inf": 0})


def test_a_pod_whose_histogram_went_down_restarted() -> None:
    before = PodCounters(requests=100, errors=0, buckets={"10": 80, "+Inf": 100})
    # More requests and as many errors as before, but fewer fast ones: counted anew.
    now = PodCounters(requests=150, errors=0, buckets={"10": 20, "+Inf": 150})
    assert pod_difference(now, before) == now
    # Fewer errors alone says the same.
    errors_down = PodCounters(requests=150, errors=0, buckets={"10": 120, "+Inf": 150})
    assert pod_difference(errors_down, before.model_copy(update={"errors": 5.0})) == errors_down


def test_the_status_keeps_each_pods_histogram_up_to_32_pods() -> None:
    def pods(count: int) -> dict[str, PodCounters]:
        return {f"p{i}": PodCounters(requests=1, buckets={"10": 1, "+Inf": 1}) for i in range(count)}

    assert len(totals(pods(32)).pods) == 32
    summed = totals(pods(33))
    assert (summed.pods, len(summed.pod_counts)) == ({}, 33)
    assert summed.buckets == {"10": 33, "+Inf": 33}


def test_a_restarted_pod_takes_its_share_of_a_summed_histogram() -> None:
    """33 pods (their histograms kept summed) served 10 requests each, all under 10 ms; then
    32 served 10 more and one restarted and served 5: the interval is 325 requests."""
    fast = {"10": 10.0, "+Inf": 10.0}
    before = totals({f"p{i}": PodCounters(requests=10, buckets=fast) for i in range(33)})
    after = {f"p{i}": PodCounters(requests=20, buckets={"10": 20, "+Inf": 20}) for i in range(32)}
    after["p32"] = PodCounters(requests=5, buckets={"10": 5, "+Inf": 5})
    window = window_counts(after, before)
    assert window.requests == 325
    assert window.buckets == pytest.approx({"10": 325, "+Inf": 325})


def test_summed_histograms_never_go_below_zero_nor_above_what_was_served() -> None:
    """A pod that served 100 fast requests left; the 32 others served one slow request each
    and nothing since: the interval served nothing, in every bucket."""
    before = {f"p{i}": PodCounters(requests=1, buckets={"10": 0, "+Inf": 1}) for i in range(32)}
    kept = totals({**before, "gone": PodCounters(requests=100, buckets={"10": 100, "+Inf": 100})})
    window = window_counts(before, kept)
    assert window.requests == 0
    assert window.buckets == {"10": 0, "+Inf": 0}


def test_baselines_join_counters_of_either_form() -> None:
    baseline = {"new": PodCounters(requests=4, errors=1, buckets={"10": 4, "+Inf": 4})}
    assert with_baselines(None, baseline) == totals(baseline)
    old = {"old": PodCounters(requests=10, errors=2, buckets={"10": 10, "+Inf": 10})}
    assert with_baselines(Counters(pods=old), baseline).pods == {**baseline, **old}
    summed = totals({f"p{i}": PodCounters(requests=1, errors=1, buckets={"+Inf": 1}) for i in range(33)})
    joined = with_baselines(summed, baseline)
    assert (joined.requests, joined.errors) == (37, 34)
    assert joined.pod_counts["new"] == [4, 1]


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {"10": 1.0, "+Inf": 1.0}, 5.0),  # one request: interpolated in the first bucket
        (0.5, {"10": 2.0, "+Inf": 2.0}, 5.0),  # the first bucket starts at 0
        (0.99, {"10": 99.0, "+Inf": 100.0}, 10.0),  # the rank falls on the last finite bound
        (0.5, {"10": 0.0, "100": 0.0, "+Inf": 4.0}, math.inf),
        (0.99, {"10": 0.0, "+Inf": 0.0}, None),  # no requests: no quantile
        (0.5, {"+5": 2.0, "+Inf": 2.0}, 2.5),  # a bound written with its sign is a number
        (0.0, {"10": 0.0, "100": 5.0, "+Inf": 5.0}, 10.0),  # rank 0: the first bound, no 0 / 0
    ],
)
def test_quantile_edges(q: float, buckets: dict[str, float], expected: float | None) -> None:
    assert quantile(q, buckets) == expected
