"""The edges of the relative verdicts: each test holds a guard that mutation testing
(make mutation) found no test holding."""

from __future__ import annotations

import math

import pytest

from modeldeploy.api.spec import RelativeAnalysis
from modeldeploy.api.status import Verdict
from modeldeploy.rollout import relative
from modeldeploy.rollout.statistics import OneSided, binomial_tails, regularized_beta
from modeldeploy.rollout.window import Window

pytestmark = pytest.mark.timeout(30)
BOTH = RelativeAnalysis(success_rate_max_drop=0.005, latency_p99_max_ratio=1.5, confidence=0.95)


def test_messages_go_failing_first_then_inconclusive_then_passed() -> None:
    parts = [(Verdict.PASSED, "p"), (Verdict.INCONCLUSIVE, "i"), (Verdict.FAILED, "f")]
    assert relative.by_severity(parts) == ["f", "i", "p"]


def test_one_request_on_each_side_is_compared_not_called_missing() -> None:
    one = Window(1, 0, None, {"10000": 1.0, "+Inf": 1.0})
    comparison = relative.compare(one, one, BOTH)
    assert "no canary" not in comparison.message
    assert "no stable" not in comparison.message
    assert comparison.check.canary_success_rate == 1.0


def test_the_message_gives_both_error_shares() -> None:
    finding = relative.success_rate(Window(1000, 20, None), Window(1000, 10, None), 0.005, 0.95)
    assert finding.message.startswith("canary 2% errors vs stable 1%: ")


@pytest.mark.parametrize(
    ("canary", "stable", "who"),
    [({"10": 1.0, "+Inf": 1.0}, {}, "stable"), ({}, {"10": 1.0, "+Inf": 1.0}, "canary")],
)
def test_an_empty_histogram_is_named(canary: dict[str, float], stable: dict[str, float], who: str) -> None:
    finding = relative.latency_ratio(canary, stable, 1.5, 0.95)
    assert (finding.verdict, finding.message) == (
        Verdict.INCONCLUSIVE,
        f"latency: no {who} histogram in the window",
    )


def test_no_canary_request_above_the_bound_has_the_binomial_p_value_of_none() -> None:
    buckets = {"10000": 1000.0, "+Inf": 1000.0}
    finding = relative.latency_ratio(buckets, buckets, 1.5, 0.95)
    assert finding.verdict is Verdict.PASSED
    assert finding.p_value == pytest.approx(0.99**1000)


def test_the_bound_figures_are_those_of_the_histograms() -> None:
    # The stable's p99 request is in the 1 ms bucket (99 of 100 at or below it); nothing of
    # the canary's is at or below 1.5 x that bound, and +5000 is a bound like 5000.
    stable = {"1000": 99.0, "+5000": 100.0, "+Inf": 100.0}
    canary = {"12345": 100.0, "+Inf": 100.0}
    finding = relative.latency_ratio(canary, stable, 13, 0.95)
    assert finding.message.startswith(
        "latency: 0% of canary requests over 12.3ms (13 x stable p99 bucket 1ms)"
    )
    signed = relative.latency_ratio(canary, {"1000": 50.0, "+5000": 100.0, "+Inf": 100.0}, 1.5, 0.95)
    assert "(1.5 x stable p99 bucket 5ms)" in signed.message
    slower = relative.latency_ratio({"100000": 100.0, "+Inf": 100.0}, stable, 1.5, 0.95)
    assert slower.message.startswith("latency: 100% of canary requests over 1ms")


def test_the_p99_kept_for_people_is_in_milliseconds_to_three_decimals() -> None:
    comparison = relative.compare(
        Window(100, 0, None, {"12345": 100.0, "+Inf": 100.0}), Window(100, 0, None, {}), BOTH
    )
    assert comparison.check.canary_latency_p99_ms == 12.222  # 0.99 x 12345 us


def test_a_p_value_of_exactly_one_minus_confidence_decides_nothing() -> None:
    alpha = 1.0 - 0.95
    assert relative.decide(OneSided(worse=alpha, within=0.5), 0.95)[0] is Verdict.INCONCLUSIVE
    assert relative.decide(OneSided(worse=0.5, within=alpha), 0.95)[0] is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(("p", "shown"), [(0.5, "p = 0.500"), (0.001, "p = 0.001"), (0.0009, "p < 0.001")])
def test_p_values_as_shown(p: float, shown: str) -> None:
    assert relative.p_text(p) == shown


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        binomial_tails(-1, 10, 0.01)


@pytest.mark.parametrize(("x", "expected"), [(0.0, 0.0), (1.0, 1.0)])
def test_the_incomplete_beta_at_its_ends(x: float, expected: float) -> None:
    assert regularized_beta(2.0, 3.0, x) == expected


@pytest.mark.parametrize("trials", [1, 7, 50, 200])
def test_binomial_tails_are_the_exact_sums(trials: int) -> None:
    """To a millionth of each tail; tails below 1e-100 (where log-gamma loses digits)
    decide the same as zero."""
    share = 0.01

    def pmf(k: int) -> float:
        return math.comb(trials, k) * share**k * (1 - share) ** (trials - k)

    for successes in range(trials + 1):
        tails = binomial_tails(successes, trials, share)
        at_least = sum(pmf(k) for k in range(successes, trials + 1))
        at_most = sum(pmf(k) for k in range(successes + 1))
        assert tails.worse == pytest.approx(at_least, rel=1e-6, abs=1e-100)
        assert tails.within == pytest.approx(at_most, rel=1e-6, abs=1e-100)
