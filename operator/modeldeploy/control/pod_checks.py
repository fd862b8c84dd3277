"""Pre-traffic checks at the model gate: which pods may open, and what the target version's
checks found (for the plan and status).

Each pod is checked once (per spec generation, golden file version and serving version):
results are kept in memory by pod uid, so a pod that failed is not sent its golden
requests again on every pass. After an operator restart the pods whose gates are open
are not checked again; pods still shut are.

With an executor the checks run off the reconcile workers: a pass starts a pod's checks
and goes on (the gate stays shut); when they end, the resource is queued and a later pass
reads the result. So one tenant's slow model never holds the workers every other
resource's rollout (an abort, a deadline) waits for. Without one they run in the pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from ..api.spec import ModelDeployment, PreTraffic
from ..probes.pretraffic import PodCheck, PreTrafficRunner, ServingRef
from ..rollout.golden import GoldenFileError, GoldenRequest, parse_golden
from ..rollout.types import PreTrafficVerdict
from .observe import Observation, pod_ip, version_of

LOG = logging.getLogger(__name__)

Body = dict[str, Any]
MemoKey = tuple[int, str, int | None]  # generation, golden file resourceVersion, serving version
Golden = list[GoldenRequest] | GoldenFileError | None


Jobs = dict[str, tuple[MemoKey, "Future[PodCheck]"]]  # pod uid -> (checked against, the run)


@dataclass
class PreTrafficGate:
    runner: PreTrafficRunner
    # Where the checks run; None: in the pass itself.
    executor: Executor | None = None
    # Told (namespace, name) when a resource's checks have ended off the pass.
    on_done: Callable[[str, str], None] = lambda namespace, name: None
    # (namespace, name) -> pod uid -> (what it was checked against, the result)
    _memo: dict[tuple[str, str], dict[str, tuple[MemoKey, PodCheck]]] = field(default_factory=dict)
    # (namespace, name) -> pod uid -> the checks under way
    _jobs: dict[tuple[str, str], Jobs] = field(default_factory=dict)

    def close(self) -> None:
        """Stop starting checks; those under way end within their budget, unwaited for."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def forget(self, namespace: str, name: str) -> None:
        self._memo.pop((namespace, name), None)
        for _, job in self._jobs.pop((namespace, name), {}).values():
            job.cancel()

    def prepare(
        self,
        md: ModelDeployment,
        world: Observation,
        serving_version: int | None,
        read_golden: Callable[[str, str], tuple[str | None, str]],
    ) -> PodChecks:
        """The checks of one pass. ``read_golden(name, key)`` gives (text or None when
        missing, resourceVersion) of the golden ConfigMap."""
        spec = md.spec.rollout.pre_traffic
        if spec is None:
            # Most resources: nothing to check, nothing kept, no work on this hot path.
            self.forget(md.namespace, md.name)
            return PodChecks(self.runner, md, None, {}, None, world, lambda: (None, ""))
        memo = self._memo.setdefault((md.namespace, md.name), {})
        jobs = self._jobs.setdefault((md.namespace, md.name), {})
        live = {p["metadata"].get("uid", "") for p in world.pods}
        for uid in [u for u in memo if u not in live]:
            del memo[uid]  # the pod is gone
        for uid in [u for u in jobs if u not in live]:
            jobs.pop(uid)[1].cancel()
        serving_ips = world.serving_pods(serving_version) if serving_version is not None else ()
        serving = (
            ServingRef(serving_version, serving_ips[0][1] if serving_ips else None)
            if serving_version is not None
            else None
        )

        def load_golden() -> tuple[Golden, str]:
            if spec.golden_requests is None:
                return None, ""
            ref = spec.golden_requests.config_map_ref
            where = f"ConfigMap {ref.name} key {ref.key}"
            try:
                text, version = read_golden(ref.name, ref.key)
                if text is None:
                    raise GoldenFileError(f"{where} not found")
                return parse_golden(text, where), version
            except GoldenFileError as exc:
                return exc, ""

        start = self._starter(md, jobs)
        return PodChecks(self.runner, md, spec, memo, serving, world, load_golden, start=start)

    def _starter(self, md: ModelDeployment, jobs: Jobs) -> Starter:
        """How the pass starts (or finds) one pod's checks: a future, done at once without an
        executor; with one, the resource is queued again when the checks end."""

        def start(uid: str, key: MemoKey, run: Callable[[], PodCheck]) -> Future[PodCheck]:
            held = jobs.get(uid)
            if held is not None and held[0] == key and not held[1].cancelled():
                if held[1].done():
                    del jobs[uid]  # read once: a result to retry starts anew on a later pass
                return held[1]
            if self.executor is None:
                return _run_in_pass(uid, key, run)
            job = self.executor.submit(run)
            jobs[uid] = (key, job)
            job.add_done_callback(lambda _: self.on_done(md.namespace, md.name))
            return job

        return start


Starter = Callable[[str, MemoKey, Callable[[], PodCheck]], "Future[PodCheck]"]


def _run_in_pass(uid: str, key: MemoKey, run: Callable[[], PodCheck]) -> Future[PodCheck]:
    done: Future[PodCheck] = Future()
    done.set_result(run())
    return done


@dataclass
class PodChecks:
    runner: PreTrafficRunner
    md: ModelDeployment
    spec: PreTraffic | None
    memo: dict[str, tuple[MemoKey, PodCheck]]
    serving: ServingRef | None
    world: Observation
    # Read only once a pod whose model is AVAILABLE needs checking, not on every pass
    # while models load.
    load_golden: Callable[[], tuple[Golden, str]]
    _golden: tuple[Golden, str] | None = None
    _loading: threading.Lock = field(default_factory=threading.Lock)
    # Pods whose checks wait this pass (nothing to compare with yet): shown, never remembered.
    _waiting: dict[str, PodCheck] = field(default_factory=dict)
    # Starts (or finds) a pod's checks; the gate's own starter queues them off the pass.
    start: Starter = _run_in_pass

    def _golden_file(self) -> tuple[Golden, str]:
        with self._loading:
            if self._golden is None:
                self._golden = self.load_golden()
            return self._golden

    def passes(self, pod: Body) -> bool:
        """Whether ``pod`` (its model AVAILABLE) may take traffic. Safe from many threads:
        each pod writes only its own memo entry."""
        if self.spec is None:
            return True
        golden, golden_version = self._golden_file()
        key: MemoKey = (self.md.generation, golden_version, self.serving.version if self.serving else None)
        uid = pod["metadata"].get("uid", "")
        held = self.memo.get(uid)
        if held is not None and held[0] == key:
            return held[1].passed
        version, spec, serving = version_of(pod), self.spec, self.serving
        job = self.start(
            uid,
            key,
            lambda: self.runner.check(spec, self.md.model_name, version, pod_ip(pod), serving, golden),
        )
        if not job.done():
            return False  # under way off the pass: the resource is queued when they end
        result = job.result()
        name = pod["metadata"]["name"]
        if result.retry is not None or result.waiting is not None:
            LOG.info("pre-traffic checks of pod %s: %s; trying again", name, result.retry or result.waiting)
            if result.waiting is not None:
                self._waiting[uid] = result
            return False
        self.memo[uid] = (key, result)
        if result.passed:
            LOG.info("pre-traffic checks of pod %s (version %d) passed", name, version)
        else:
            LOG.warning("pre-traffic checks of pod %s failed: %s", name, result.failure or result.blocked)
        return result.passed

    def verdict(self) -> PreTrafficVerdict | None:
        """What the checks found of the target version's pods, and what holds any pod shut."""
        if self.spec is None:
            return None
        target = self.md.spec.model.version
        by_uid = {p["metadata"].get("uid", ""): p for p in self.world.pods}
        # Checked against this generation and serving version (a golden file fixed since
        # has had its pods checked again earlier in this pass).
        serving = self.serving.version if self.serving is not None else None
        results = [
            (by_uid[uid], check)
            for uid, ((generation, _, against), check) in self.memo.items()
            if generation == self.md.generation and against == serving and uid in by_uid
        ]
        waiting = [(by_uid[uid], check) for uid, check in self._waiting.items() if uid in by_uid]
        if not results and not waiting:
            return None
        blocked = next((c.blocked for _, c in results if c.blocked is not None), None)
        serving_version = self.serving.version if self.serving is not None else None
        for pod, check in results:
            if blocked is None and check.failure is not None and version_of(pod) == serving_version:
                # The serving version's own new pod: kept shut, but the version is not rolled
                # back from itself; a condition says why that pod takes no traffic.
                blocked = f"pod {pod['metadata']['name']} kept out of service: {check.failure[1]}"
        mine = [(p, c) for p, c in results if version_of(p) == target]
        failed = next((c for _, c in mine if c.failure is not None), None)
        waits = next((c for p, c in waiting if version_of(p) == target), None)
        shown = failed or waits or (mine[-1][1] if mine else None)
        return PreTrafficVerdict(
            version=target,
            status=shown.status if shown is not None and shown.blocked is None else None,
            failure=failed.failure if failed is not None else None,
            blocked=blocked,
            baselines={
                p["metadata"]["name"]: c.baseline for p, c in mine if c.passed and c.baseline is not None
            },
        )
