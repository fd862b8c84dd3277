"""The tests the relative analysis decides with: a two-proportion test on error counts and
an exact binomial tail. Pure, standard library only (no SciPy at run time).

Each test answers two one-sided p-values: of "the canary is worse than allowed" and of
"the canary is within the allowance". A verdict needs one of them below 1 - confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The continued fraction of the incomplete beta converges in O(sqrt(n)) terms; this bounds
# a million requests many times over.
_MAX_TERMS = 100_000
_TINY = 1e-300
_EPSILON = 1e-15


@dataclass(frozen=True)
class OneSided:
    """The two one-sided p-values of one comparison."""

    worse: float  # p of H0 "within the allowance": small means the canary is worse
    within: float  # p of H0 "worse than allowed": small means the canary is within it


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def difference_of_proportions(
    canary_failures: float, canary_total: float, stable_failures: float, stable_total: float, margin: float
) -> OneSided:
    """One-sided tests of "the canary's failure share exceeds the stable's by more than
    ``margin``", by Agresti and Caffo's adjusted Wald statistic: one failure and one success
    added to each side, so zero failures on both sides (the usual case) still has a variance
    and small samples keep their nominal level. Same as statsmodels'
    test_proportions_2indep(method="agresti-caffo", compare="diff")."""
    canary_share = (canary_failures + 1.0) / (canary_total + 2.0)
    stable_share = (stable_failures + 1.0) / (stable_total + 2.0)
    variance = canary_share * (1.0 - canary_share) / (canary_total + 2.0) + stable_share * (
        1.0 - stable_share
    ) / (stable_total + 2.0)
    z = (canary_share - stable_share - margin) / math.sqrt(variance)
    return OneSided(worse=normal_sf(z), within=normal_sf(-z))


def binomial_tails(successes: int, trials: int, share: float) -> OneSided:
    """Exact one-sided binomial tests of ``successes`` in ``trials`` against ``share``:
    worse = P(X >= successes), within = P(X <= successes) for X ~ Binomial(trials, share)."""
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} must lie in [0, {trials}]")
    at_least = 1.0 if successes == 0 else regularized_beta(successes, trials - successes + 1, share)
    at_most = 1.0 if successes == trials else 1.0 - regularized_beta(successes + 1, trials - successes, share)
    return OneSided(worse=at_least, within=at_most)


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function (a, b > 0), by its continued
    fraction on whichever side converges fast (Numerical Recipes' betai)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The incomplete beta's continued fraction, by the modified Lentz method."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _MAX_TERMS):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _EPSILON:
            return result
    return result
