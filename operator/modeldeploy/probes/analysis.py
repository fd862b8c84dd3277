"""One canary analysis check: read the interval's traffic from its source, then judge it.

Never raises: a source that cannot be read makes the check inconclusive.
"""

from __future__ import annotations

import logging

from ..api.spec import Analysis
from ..api.status import CheckResult, Counters, Verdict
from ..rollout.analysis import evaluate
from ..rollout.types import Check
from ..rollout.window import MESSAGE_LIMIT
from .providers import MetricsUnavailableError, Target, provider_for

LOG = logging.getLogger(__name__)


def check(spec: Analysis, target: Target, previous: Counters | None, at: str) -> Check:
    """One check of ``target``'s traffic since ``previous`` (the counters of the last check).

    Never raises: metrics that cannot be read make the check inconclusive, and the
    counters stay as they were, so the next check measures from the last good one.
    """
    try:
        window, counters = provider_for(spec).window(target, previous)
    except MetricsUnavailableError as exc:
        return Check(CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=str(exc)), previous)
    except Exception as exc:  # a provider bug must not freeze the canary: the deadline still runs
        LOG.exception("analysis of %s/%s failed", target.namespace, target.model)
        message = f"analysis failed: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT]
        return Check(CheckResult(at=at, verdict=Verdict.INCONCLUSIVE, message=message), previous)
    return Check(evaluate(window, spec, at), counters)
