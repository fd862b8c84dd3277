"""The pre-traffic checks of one new pod, run before its model gate opens.

Order: the signature (TF Serving's metadata, against the serving version's), warm-up
requests, then the golden requests; last, the pod's request counters are read, so the
canary's analysis measures from the warm state and counts none of these requests.

Three kinds of ending, kept apart because they lead to different things:
- ``failure``: the version itself is wrong (a changed signature, wrong answers, a golden
  request it refuses). It never gets traffic; the plan rolls it back.
- ``blocked``: the check cannot be made as configured (a missing ConfigMap, a line that
  is not a predict body). The gate stays shut and a condition names the problem; this is
  never a pass, and not the version's fault.
- ``retry``: the pod or the serving version did not answer in time: asked again later.
  Every check of a pod shares one budget: checks that outlast it end ``blocked`` (the
  configuration asks more of the model than it can answer in time), remembered, never
  started again from the beginning on a later pass.
- ``waiting``: the checks compare with the serving version, and none of its pods serves
  right now (one restarting, a drain): nothing is sent, and the pod is checked again
  later. Only a first version, with no serving version, skips the comparisons.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api.names import REST_PORT
from ..api.spec import CompareTo, PreTraffic, SignaturePolicy
from ..api.status import GoldenCheck, PodCounters, PreTrafficStatus, SignatureCheck, SignatureResult
from ..rollout.bounded_json import loads_bounded
from ..rollout.golden import (
    GoldenFileError,
    GoldenRequest,
    WarmupTooLargeError,
    answer_of,
    mismatch,
    warmup_bodies,
)
from ..rollout.signature import MetadataError, Signatures, differences, parse_metadata
from . import bounded_http

REQUEST_TIMEOUT_SECONDS = 5.0
# All the requests of one pod's checks: signature, warm-up and golden requests together.
CHECK_BUDGET_SECONDS = 120.0
MAX_REPLY_BYTES = 4 << 20
MESSAGE_LIMIT = 300

REASON_SIGNATURE = "SignatureChanged"
REASON_GOLDEN = "GoldenRequestsFailed"


@dataclass(frozen=True)
class ServingRef:
    """The version that serves now, to compare with: one of its serving pods, if any."""

    version: int
    pod_ip: str | None


@dataclass(frozen=True)
class PodCheck:
    status: PreTrafficStatus
    failure: tuple[str, str] | None = None  # (reason, message)
    blocked: str | None = None
    retry: str | None = None
    waiting: str | None = None
    baseline: PodCounters | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None and self.blocked is None and self.retry is None and self.waiting is None


class UnansweredError(Exception):
    """A pod did not answer as a server should (timeout, reset, 5xx): ask again later."""


class BudgetSpentError(Exception):
    """The checks of one pod used up their budget before they were done."""


@dataclass
class PreTrafficRunner:
    # Injected so unit tests can run the checks on scripted replies.
    request: Callable[[str, bytes | None], tuple[int, bytes]] = field(
        default=lambda url, body: _http(url, body)
    )
    scrape: Callable[[str, str], PodCounters] | None = None
    budget_seconds: float = CHECK_BUDGET_SECONDS
    clock: Callable[[], float] = time.monotonic
    _deadline: float = field(default=float("inf"), init=False)

    def _send(self, url: str, body: bytes | None) -> tuple[int, bytes]:
        if self.clock() >= self._deadline:
            raise BudgetSpentError(f"the checks did not finish within their {self.budget_seconds:g}s budget")
        return self.request(url, body)

    def metadata(self, ip: str, model: str, version: int) -> Signatures:
        status, raw = self._send(_url(ip, model, version, "/metadata"), None)
        if status != 200:
            raise UnansweredError(f"metadata of version {version} on {ip}: HTTP {status}")
        try:
            return parse_metadata(loads_bounded(raw))
        except (ValueError, MetadataError) as exc:
            raise UnansweredError(f"metadata of version {version} on {ip}: {exc}") from None

    def predict(self, ip: str, model: str, version: int, body: bytes) -> tuple[int, Any]:
        status, raw = self._send(_url(ip, model, version, ":predict"), body)
        if status >= 500:
            raise UnansweredError(f"predict on {ip}: HTTP {status}")
        try:
            return status, loads_bounded(raw)
        except ValueError as exc:
            raise UnansweredError(f"predict on {ip}: the reply is not JSON: {exc}") from None

    def check(
        self,
        spec: PreTraffic,
        model: str,
        version: int,
        ip: str,
        serving: ServingRef | None,
        golden: list[GoldenRequest] | GoldenFileError | None,
    ) -> PodCheck:
        runner = copy.copy(self)  # one budget per pod; the runner itself is shared by threads
        runner._deadline = self.clock() + self.budget_seconds
        try:
            return runner._check(spec, model, version, ip, serving, golden)
        except (UnansweredError, bounded_http.FetchError) as exc:
            return PodCheck(PreTrafficStatus(), retry=str(exc)[:MESSAGE_LIMIT])
        except BudgetSpentError as exc:
            return PodCheck(PreTrafficStatus(), blocked=f"version {version}: {exc}"[:MESSAGE_LIMIT])

    def _check(
        self,
        spec: PreTraffic,
        model: str,
        version: int,
        ip: str,
        serving: ServingRef | None,
        golden: list[GoldenRequest] | GoldenFileError | None,
    ) -> PodCheck:
        compare = serving if serving is not None and serving.version != version else None
        if compare is not None and compare.pod_ip is None and _compares(spec):
            waiting = f"waiting for a serving pod of version {compare.version} to compare with"
            return PodCheck(PreTrafficStatus(waiting_for=waiting), waiting=waiting)
        signatures = self.metadata(ip, model, version)
        signature = self._signature(spec, model, signatures, compare)
        if signature.result is SignatureResult.INCOMPATIBLE:
            message = f"version {version}: " + "; ".join(signature.diffs)
            return PodCheck(
                PreTrafficStatus(signature=signature), failure=(REASON_SIGNATURE, message[:MESSAGE_LIMIT])
            )
        if isinstance(golden, GoldenFileError):
            return PodCheck(PreTrafficStatus(signature=signature), blocked=str(golden)[:MESSAGE_LIMIT])
        status = self._warm_up(spec, model, version, ip, golden, signatures).model_copy(
            update={"signature": signature}
        )
        failure: tuple[str, str] | None = None
        if golden is not None and spec.golden_requests is not None:
            result, failure = self._golden(spec, model, version, ip, compare, golden)
            status = status.model_copy(update={"golden": result})
        baseline = self.scrape(model, ip) if self.scrape is not None else None
        return PodCheck(status, failure=failure, baseline=baseline)

    def _warm_up(
        self,
        spec: PreTraffic,
        model: str,
        version: int,
        ip: str,
        golden: list[GoldenRequest] | None,
        signatures: Signatures,
    ) -> PreTrafficStatus:
        """Sends the warm-up requests. A model too large for a synthetic request gets none:
        warm-up only spares the first users a slow answer, so its absence is said, not a
        reason to hold the pod (the golden requests, correctness, still decide)."""
        try:
            bodies = warmup_bodies(golden, signatures, spec.warmup_requests)
        except WarmupTooLargeError as exc:
            return PreTrafficStatus(warmup_skipped=f"version {version}: {exc}"[:MESSAGE_LIMIT])
        for body in bodies:
            self.predict(ip, model, version, body)  # answers do not matter: the model gets warm
        return PreTrafficStatus(warmed_up=spec.warmup_requests > 0)

    def _signature(
        self, spec: PreTraffic, model: str, signatures: Signatures, compare: ServingRef | None
    ) -> SignatureCheck:
        if compare is None or compare.pod_ip is None or spec.signature is SignaturePolicy.IGNORE:
            return SignatureCheck(result=SignatureResult.SKIPPED)
        before = self.metadata(compare.pod_ip, model, compare.version)
        diffs = differences(before, signatures, spec.signature)
        return SignatureCheck(
            result=SignatureResult.INCOMPATIBLE if diffs else SignatureResult.COMPATIBLE, diffs=diffs
        )

    def _golden(
        self,
        spec: PreTraffic,
        model: str,
        version: int,
        ip: str,
        compare: ServingRef | None,
        golden: list[GoldenRequest],
    ) -> tuple[GoldenCheck, tuple[str, str] | None]:
        config = spec.golden_requests
        assert config is not None
        # The first version has nothing to agree with: its requests must still be answered.
        stable_ip = compare.pod_ip if compare is not None else None
        against_stable = config.compare_to is CompareTo.STABLE and stable_ip is not None
        passed = 0
        first = ""
        for index, request in enumerate(golden):
            status, reply = self.predict(ip, model, version, request.body)
            problem: str | None
            if status != 200:
                error = reply.get("error") if isinstance(reply, dict) else reply
                problem = f"the model refused it: HTTP {status}: {str(error)[:160]}"
            elif against_stable and compare is not None and stable_ip is not None:
                stable_status, stable_reply = self.predict(stable_ip, model, compare.version, request.body)
                if stable_status != 200:
                    raise UnansweredError(
                        f"the serving version refused golden line {request.line}: HTTP {stable_status}"
                    )
                problem = _against_stable(compare.version, stable_reply, reply, config.tolerance)
            elif request.expected is not None and config.compare_to is CompareTo.EXPECTED:
                problem = _difference(request.expected, reply, config.tolerance)
            else:
                problem = None
            if problem is None:
                passed += 1
            elif not first:
                first = f"request {index + 1} (line {request.line}): {problem}"
        total = len(golden)
        agreement = passed / total
        result = GoldenCheck(
            requests=total,
            passed=passed,
            agreement=round(agreement, 4),
            first_mismatch=first[:MESSAGE_LIMIT],
            compared_with=compare.version if against_stable and compare is not None else None,
        )
        needed = config.min_agreement if against_stable else 1.0
        if agreement + 1e-12 < needed:
            what = (
                f"agreement {agreement:.2f} with version {compare.version} is under {needed:g}"
                if against_stable and compare is not None
                else f"{total - passed} of {total} golden answers wrong"
            )
            return result, (REASON_GOLDEN, f"version {version}: {what}; {first}"[:MESSAGE_LIMIT])
        return result, None


def _compares(spec: PreTraffic) -> bool:
    """Whether the checks compare with the serving version (and so need one of its pods)."""
    golden = spec.golden_requests
    stable_golden = golden is not None and golden.compare_to is CompareTo.STABLE
    return spec.signature is not SignaturePolicy.IGNORE or stable_golden


def _against_stable(version: int, stable_reply: Any, reply: Any, tolerance: Any) -> str | None:
    """How ``reply`` differs from the serving version's answer; a serving reply without an
    answer is this request's mismatch (the canary cannot be shown to agree), not a crash."""
    try:
        expected = answer_of(stable_reply)
    except ValueError as exc:
        return f"the serving version {version}: {exc}"
    return _difference(expected, reply, tolerance)


def _difference(expected: Any, reply: Any, tolerance: Any) -> str | None:
    try:
        got = answer_of(reply)
    except ValueError as exc:
        return str(exc)
    return mismatch(expected, got, tolerance)


def _url(ip: str, model: str, version: int, suffix: str) -> str:
    return f"http://{ip}:{REST_PORT}/v1/models/{model}/versions/{version}{suffix}"


def _http(url: str, body: bytes | None) -> tuple[int, bytes]:
    if body is None:
        return bounded_http.get(url, REQUEST_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
    return bounded_http.post_json(url, body, REQUEST_TIMEOUT_SECONDS, MAX_REPLY_BYTES)
