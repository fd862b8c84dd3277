"""Canary analysis: the verdict on one interval's traffic (success rate, p99 latency).

Fewer than ``minRequests`` requests is inconclusive, never a pass; metrics that
cannot be read are inconclusive too.
"""

from __future__ import annotations

import math

from ..api.spec import Analysis
from ..api.status import CheckResult, Verdict
from .window import MESSAGE_LIMIT, Window


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def _counts(window: Window) -> bool:
    """Both counts are finite and not negative, with no more errors than requests."""
    requests, errors = window.requests, window.errors
    return math.isfinite(requests) and math.isfinite(errors) and 0 <= errors <= requests


def evaluate(window: Window, spec: Analysis, at: str) -> CheckResult:
    """Passed, Failed or Inconclusive, with the values and the thresholds in the message.

    Only what was measured can pass: no requests, or no latency data while latency is
    judged, is inconclusive; a p99 beyond the last bucket fails.
    """
    if not _counts(window):
        # A provider let through what is not a count: nothing measured, and nothing of it kept.
        message = f"the counts are not finite counts: {window.requests} request(s), {window.errors} error(s)"
        return CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=message[:MESSAGE_LIMIT])
    success = 1.0 - window.errors / window.requests if window.requests > 0 else None
    p99 = _finite(window.p99_ms)
    values = {
        "at": at,
        "requests": round(window.requests, 3),
        "success_rate": None if success is None else round(success, 4),
        "latency_p99_ms": None if p99 is None or math.isinf(p99) else round(p99, 3),
    }

    def result(verdict: Verdict, message: str) -> CheckResult:
        return CheckResult(verdict=verdict, message=message[:MESSAGE_LIMIT], **values)

    if success is None or window.requests < spec.min_requests:
        return result(
            Verdict.INCONCLUSIVE, f"{window.requests:g} request(s) < minRequests {max(spec.min_requests, 1)}"
        )
    min_success = spec.success_rate.min if spec.success_rate is not None else None
    max_p99 = spec.latency_p99_ms.max if spec.latency_p99_ms is not None else None
    problems = []
    if min_success is not None and success < min_success:
        problems.append(f"success rate {success:.4f} < {min_success}")
    if max_p99 is not None and p99 is not None and p99 > max_p99:
        shown = "above the largest bucket" if math.isinf(p99) else f"{p99:.1f}ms"
        problems.append(f"p99 latency {shown} > {max_p99:g}ms")
    if problems:
        return result(Verdict.FAILED, "; ".join(problems) + f" over {window.requests:g} requests")
    if max_p99 is not None and p99 is None:
        return result(Verdict.INCONCLUSIVE, f"no latency data over {window.requests:g} requests")
    shown_p99 = "n/a" if p99 is None else f"{p99:.1f}ms"
    return result(
        Verdict.PASSED, f"success rate {success:.4f}, p99 {shown_p99} over {window.requests:g} requests"
    )
