"""The canary judged against the stable over the same window (analysis.relative). Pure.

Success rate: a one-sided two-proportion test of the error counts against the allowed drop.
Latency: TF Serving's histograms compared bucket by bucket, never two p99 estimates: the
share of canary requests above the bucket bound at latencyP99MaxRatio times the stable's
p99 bucket bound must be at most 1% (what "the canary's p99 is below that bound" means),
by an exact binomial test. Each test is Failed when the canary is worse with the confidence
asked, Passed when it is within with that confidence, else Inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..api.spec import RelativeAnalysis
from ..api.status import CheckResult, RelativeCheck, Verdict
from .metrics import quantile
from .statistics import OneSided, binomial_tails, difference_of_proportions
from .window import MESSAGE_LIMIT, Window

LATENCY_QUANTILE = 0.99
# The share of requests a p99 leaves above it.
SHARE_ABOVE_P99 = 1.0 - LATENCY_QUANTILE
# Float noise in ratio x bound must not drop a bucket bound equal to the product.
_BOUND_SLACK = 1e-9
NO_STABLE_BASELINE = "relative: the stable's counters start at this check; compared from the next"
NO_STABLE = "relative: no stable version serves to compare with"


@dataclass(frozen=True)
class Finding:
    """One test's verdict, its p-value, and a line saying both versions' figures."""

    verdict: Verdict
    p_value: float | None
    message: str


@dataclass(frozen=True)
class Comparison:
    """The relative check: what status keeps, and its message."""

    check: RelativeCheck
    message: str


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Failed if any failed, else Inconclusive if any is, else Passed."""
    seen = set(verdicts)
    for verdict in (Verdict.FAILED, Verdict.INCONCLUSIVE):
        if verdict in seen:
            return verdict
    return Verdict.PASSED


def by_severity(parts: Iterable[tuple[Verdict, str]]) -> list[str]:
    """Messages with the failing ones first: a status message is cut at its limit."""
    order = {Verdict.FAILED: 0, Verdict.INCONCLUSIVE: 1, Verdict.PASSED: 2}
    return [message for _, message in sorted(parts, key=lambda part: order[part[0]])]


def compare(canary: Window, stable: Window | None, spec: RelativeAnalysis) -> Comparison:
    """The relative check of one window; None for ``stable`` means its counters start now."""
    if stable is None:
        return undecided(NO_STABLE_BASELINE)
    findings: list[Finding] = []
    success: Finding | None = None
    latency: Finding | None = None
    if spec.success_rate_max_drop is not None:
        success = success_rate(canary, stable, spec.success_rate_max_drop, spec.confidence)
        findings.append(success)
    if spec.latency_p99_max_ratio is not None:
        latency = latency_ratio(canary.buckets, stable.buckets, spec.latency_p99_max_ratio, spec.confidence)
        findings.append(latency)
    check = RelativeCheck(
        result=worst(f.verdict for f in findings),
        canary_success_rate=_success_rate(canary),
        stable_success_rate=_success_rate(stable),
        p_value=success.p_value if success is not None else None,
        canary_latency_p99_ms=_p99_ms(canary.buckets),
        stable_latency_p99_ms=_p99_ms(stable.buckets),
        latency_p_value=latency.p_value if latency is not None else None,
    )
    return Comparison(check, "; ".join(by_severity((f.verdict, f.message) for f in findings)))


def undecided(message: str) -> Comparison:
    """A relative check with nothing to compare yet: Inconclusive, never Passed."""
    return Comparison(RelativeCheck(result=Verdict.INCONCLUSIVE), message)


def success_rate(canary: Window, stable: Window, max_drop: float, confidence: float) -> Finding:
    """Whether the canary's error share exceeds the stable's by more than ``max_drop``."""
    for who, window in (("canary", canary), ("stable", stable)):
        if window.requests <= 0:
            return Finding(Verdict.INCONCLUSIVE, None, f"relative: no {who} requests in the window")
    tails = difference_of_proportions(
        canary.errors, canary.requests, stable.errors, stable.requests, max_drop
    )
    verdict, p_value = decide(tails, confidence)
    outcome = {
        Verdict.FAILED: f"worse by more than {percent(max_drop)}",
        Verdict.PASSED: f"within {percent(max_drop)}",
        Verdict.INCONCLUSIVE: f"too few requests to tell a drop of {percent(max_drop)}",
    }[verdict]
    message = (
        f"canary {percent(canary.errors / canary.requests)} errors vs stable "
        f"{percent(stable.errors / stable.requests)}: {outcome}, {p_text(p_value)} at {confidence:g}"
    )
    return Finding(verdict, p_value, message)


def latency_ratio(
    canary: Mapping[str, float], stable: Mapping[str, float], max_ratio: float, confidence: float
) -> Finding:
    """Whether more than 1% of the canary's requests lie above the bucket bound at
    ``max_ratio`` times the stable's p99 bucket bound (its p99 is above that bound)."""
    canary_total, stable_total = _total(canary), _total(stable)
    if canary_total < 1 or stable_total < 1:
        who = "canary" if canary_total < 1 else "stable"
        return Finding(Verdict.INCONCLUSIVE, None, f"latency: no {who} histogram in the window")
    stable_bound = _quantile_bound(stable, LATENCY_QUANTILE * stable_total)
    if math.isinf(stable_bound):
        return Finding(Verdict.INCONCLUSIVE, None, "latency: the stable's p99 lies above the largest bucket")
    bound = _largest_bound_at_most(max_ratio * stable_bound, [*canary, *stable])
    above = round(canary_total - _count_at(canary, bound))
    tails = binomial_tails(max(0, above), round(canary_total), SHARE_ABOVE_P99)
    verdict, p_value = decide(tails, confidence)
    outcome = {Verdict.FAILED: "slower", Verdict.PASSED: "within", Verdict.INCONCLUSIVE: "undecided"}[verdict]
    message = (
        f"latency: {percent(above / canary_total)} of canary requests over {_ms(bound)} "
        f"({max_ratio:g} x stable p99 bucket {_ms(stable_bound)}) vs 1% allowed: {outcome}, "
        f"{p_text(p_value)} at {confidence:g}"
    )
    return Finding(verdict, p_value, message)


def decide(tails: OneSided, confidence: float) -> tuple[Verdict, float]:
    """Failed or Passed when that side's p-value is below 1 - confidence, else Inconclusive
    (with the p-value of "the canary is worse")."""
    alpha = 1.0 - confidence
    if tails.worse < alpha:
        return Verdict.FAILED, tails.worse
    if tails.within < alpha:
        return Verdict.PASSED, tails.within
    return Verdict.INCONCLUSIVE, tails.worse


def percent(share: float) -> str:
    """A share as a percent with two significant digits, never in exponent form:
    0.009 -> 0.9%, 0.0001 -> 0.01%, 0.123 -> 12%, 1 -> 100%."""
    if share == 0:
        return "0%"
    if share >= 0.1:
        return f"{100 * share:.0f}%"
    return f"{100 * share:.2g}%"


def p_text(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def _success_rate(window: Window) -> float | None:
    return 1.0 - window.errors / window.requests if window.requests > 0 else None


def _p99_ms(buckets: Mapping[str, float]) -> float | None:
    """Prometheus's estimate, for people reading status; the test never uses it."""
    p99_us = quantile(LATENCY_QUANTILE, dict(buckets))
    return None if p99_us is None or math.isinf(p99_us) else round(p99_us / 1000.0, 3)


def _bound(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)


def _total(buckets: Mapping[str, float]) -> float:
    """Requests in a cumulative histogram: its largest count (the +Inf bucket's)."""
    return max(buckets.values(), default=0.0)


def _count_at(buckets: Mapping[str, float], bound: float) -> float:
    """Requests at or below ``bound``: the count of the nearest bound at or below it (a
    compacted histogram leaves out the bounds equal to the one below)."""
    counts = [count for le, count in buckets.items() if _bound(le) <= bound]
    return max(counts, default=0.0)


def _quantile_bound(buckets: Mapping[str, float], rank: float) -> float:
    """The upper bound of the bucket holding the request of ``rank``."""
    for bound, count in sorted((_bound(le), count) for le, count in buckets.items()):
        if count >= rank:
            return bound
    return math.inf


def _largest_bound_at_most(limit: float, labels: list[str]) -> float:
    """The largest finite bucket bound at or below ``limit`` (at least the stable's bound,
    which ``labels`` hold and ``limit`` is a multiple >= 1 of)."""
    return max(b for le in labels if math.isfinite(b := _bound(le)) and b <= limit * (1 + _BOUND_SLACK))


def _ms(bound_us: float) -> str:
    return f"{bound_us / 1000.0:.3g}ms"


def judged_with(result: CheckResult, comparison: Comparison) -> CheckResult:
    """The absolute check's result with the relative one beside it: the worse verdict of
    the two, and both messages, the failing one first."""
    verdict = worst((result.verdict, comparison.check.result))
    parts = by_severity(((result.verdict, result.message), (comparison.check.result, comparison.message)))
    message = "; ".join(part for part in parts if part)[:MESSAGE_LIMIT]
    return result.model_copy(update={"verdict": verdict, "message": message, "relative": comparison.check})
