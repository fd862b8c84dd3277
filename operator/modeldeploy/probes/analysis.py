"""One canary analysis check: read the interval's traffic from its source, then judge it
(and, with analysis.relative, the stable's traffic over the same window beside it).

Never raises: a source that cannot be read makes the check inconclusive.
"""

from __future__ import annotations

import logging

from ..api.spec import Analysis
from ..api.status import CheckResult, Counters, Verdict
from ..rollout import relative
from ..rollout.analysis import evaluate
from ..rollout.types import Check
from ..rollout.window import MESSAGE_LIMIT, Window
from .providers import MetricsUnavailableError, Provider, Target, provider_for

LOG = logging.getLogger(__name__)


def check(
    spec: Analysis, target: Target, previous: Counters | None, at: str, provider: Provider | None = None
) -> Check:
    """One check of ``target``'s traffic since ``previous`` (the counters of the last check),
    read by ``provider`` (by default the one ``spec`` names).

    Never raises: metrics that cannot be read make the check inconclusive, and the
    counters stay as they were, so the next check measures from the last good one.
    """
    provider = provider or provider_for(spec)
    try:
        window, counters = provider.window(target, previous)
        stable, stable_counters = _stable_window(spec, provider, target)
    except MetricsUnavailableError as exc:
        return Check(CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=str(exc)), previous)
    except Exception as exc:  # a provider bug must not freeze the canary: the deadline still runs
        LOG.exception("analysis of %s/%s failed", target.namespace, target.model)
        message = f"analysis failed: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT]
        return Check(CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=message), previous)
    result = evaluate(window, spec, at)
    if spec.relative is not None:
        if target.stable is None:
            comparison = relative.undecided(relative.NO_STABLE)
        else:
            comparison = relative.compare(window, stable, spec.relative)
        result = relative.judged_with(result, comparison)
    return Check(result, counters, stable_counters)


def _stable_window(
    spec: Analysis, provider: Provider, target: Target
) -> tuple[Window | None, Counters | None]:
    """The stable's traffic over the same window, and its counters to keep; no window while
    its counters only start (the pods scrape measures between checks)."""
    if spec.relative is None or target.stable is None:
        return None, None
    stable = target.stable
    window, counters = provider.window(target.of_stable(stable), stable.previous)
    if counters is not None and stable.previous is None:
        return None, counters
    return window, counters
