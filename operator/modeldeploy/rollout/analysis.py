"""Canary analysis: the verdict on one interval's traffic (success rate, p99 latency).

Fewer than ``minRequests`` requests is inconclusive, never a pass; metrics that
cannot be read are inconclusive too.
"""

from __future__ import annotations

from ..api.spec import Analysis
from ..api.status import CheckResult, Counters, Verdict
from .providers import MetricsUnavailableError, Target, Window, provider_for
from .types import Check


def evaluate(window: Window, spec: Analysis, at: str) -> CheckResult:
    """Passed, Failed or Inconclusive, with the values and the thresholds in the message."""
    success = 1.0 - window.errors / window.requests if window.requests > 0 else None
    values = {
        "at": at,
        "requests": round(window.requests, 3),
        "success_rate": None if success is None else round(success, 4),
        "latency_p99_ms": None if window.p99_ms is None else round(window.p99_ms, 3),
    }
    if window.requests < spec.min_requests:
        return CheckResult(
            verdict=Verdict.INCONCLUSIVE,
            message=f"{window.requests:g} request(s) < minRequests {spec.min_requests}",
            **values,
        )
    problems = []
    min_success = spec.success_rate.min if spec.success_rate is not None else None
    max_p99 = spec.latency_p99_ms.max if spec.latency_p99_ms is not None else None
    if min_success is not None and success is not None and success < min_success:
        problems.append(f"success rate {success:.4f} < {min_success}")
    if max_p99 is not None and window.p99_ms is not None and window.p99_ms > max_p99:
        problems.append(f"p99 latency {window.p99_ms:.1f}ms > {max_p99:g}ms")
    if problems:
        return CheckResult(
            verdict=Verdict.FAILED,
            message="; ".join(problems) + f" over {window.requests:g} requests",
            **values,
        )
    p99 = "n/a" if window.p99_ms is None else f"{window.p99_ms:.1f}ms"
    return CheckResult(
        verdict=Verdict.PASSED,
        message=f"success rate {success:.4f}, p99 {p99} over {window.requests:g} requests",
        **values,
    )


def check(spec: Analysis, target: Target, previous: Counters | None, at: str) -> Check:
    """One check of ``target``'s traffic since ``previous`` (the counters of the last check)."""
    try:
        window, counters = provider_for(spec).window(target, previous)
    except MetricsUnavailableError as exc:
        return Check(CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=str(exc)), previous)
    return Check(evaluate(window, spec, at), counters)
