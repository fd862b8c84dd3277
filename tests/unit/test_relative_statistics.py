"""The relative analysis's tests against reference values: each expected number below was
computed with SciPy 1.x and statsmodels (scipy.stats.binom, scipy.stats.beta,
statsmodels.stats.proportion.test_proportions_2indep with method="agresti-caffo") and
written here, so neither is needed to run these tests."""

from __future__ import annotations

import pytest

from modeldeploy.rollout.statistics import (
    binomial_tails,
    difference_of_proportions,
    normal_sf,
    regularized_beta,
)

pytestmark = pytest.mark.timeout(30)
# Relative agreement with the references: the continued fraction stops at 1e-15 per term.
CLOSE = 1e-9


@pytest.mark.parametrize(
    ("counts", "larger", "smaller"),
    [
        # (canary errors, canary requests, stable errors, stable requests, margin):
        # test_proportions_2indep(..., value=margin, compare="diff", alternative="larger"/"smaller")
        ((4, 200, 0, 800, 0.005), 0.04629095233548193, 0.953709047664518),
        ((9, 1000, 1, 10000, 0.0), 0.0009311802032139903, 0.999068819796786),
        ((20, 1000, 0, 1000, 0.005), 0.0006224048765628757, 0.9993775951234372),
        ((0, 20, 0, 200, 0.005), 0.21343100100124723, 0.7865689989987528),
        ((1, 20, 0, 200, 0.005), 0.09398226684233163, 0.9060177331576684),
        ((50, 100000, 48, 100000, 0.001), 1.0, 5.483395952615128e-23),
        ((3, 500, 2, 500, 0.01), 0.9363518749210309, 0.0636481250789691),
    ],
)
def test_difference_of_proportions_matches_statsmodels(
    counts: tuple[float, float, float, float, float], larger: float, smaller: float
) -> None:
    tails = difference_of_proportions(*counts)
    assert tails.worse == pytest.approx(larger, rel=CLOSE)
    assert tails.within == pytest.approx(smaller, rel=CLOSE, abs=1e-30)


@pytest.mark.parametrize(
    ("k", "n", "at_least", "at_most"),
    [
        # scipy.stats.binom(n, 0.01): sf(k - 1), cdf(k)
        (0, 300, 1.0, 0.049040894071285854),
        (5, 300, 0.1838888325303633, 0.9170964367157393),
        (12, 300, 6.29219126781783e-05, 0.9999861987927738),
        (300, 300, 0.0, 1.0),
        (0, 1, 1.0, 0.99),
        (150, 10000, 1.6570601962380474e-06, 0.9999989210525138),
        (80, 10000, 0.9829836390272585, 0.022130829355983823),
        (10300, 1000000, 0.0013631150395316599, 0.9986807303173483),
        (9800, 1000000, 0.9783174222773079, 0.02221251036473548),
    ],
)
def test_binomial_tails_match_scipy(k: int, n: int, at_least: float, at_most: float) -> None:
    tails = binomial_tails(k, n, 0.01)
    # A million trials: the continued fraction's rounding adds up to about 1e-11.
    assert tails.worse == pytest.approx(at_least, rel=1e-8, abs=1e-300)
    assert tails.within == pytest.approx(at_most, rel=1e-8)


@pytest.mark.parametrize(
    ("a", "b", "x", "expected"),
    [
        # scipy.stats.beta(a, b).cdf(x)
        (2.0, 3.0, 0.4, 0.5247999999999999),
        (0.5, 0.5, 0.1, 0.20483276469913345),
        (100.0, 900.0, 0.1, 0.5112160304798115),
        (5000.0, 5000.0, 0.5001, 0.5079781143679154),
    ],
)
def test_regularized_beta_matches_scipy(a: float, b: float, x: float, expected: float) -> None:
    assert regularized_beta(a, b, x) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize(
    ("z", "expected"),
    # scipy.stats.norm.sf(z)
    [(0.0, 0.5), (1.6448536269514722, 0.05), (3.0, 0.0013498980316300933), (-2.0, 0.9772498680518208)],
)
def test_normal_tail_matches_scipy(z: float, expected: float) -> None:
    assert normal_sf(z) == pytest.approx(expected, rel=CLOSE)


def test_a_count_outside_the_trials_is_refused() -> None:
    with pytest.raises(ValueError, match="must lie in"):
        binomial_tails(5, 4, 0.01)
