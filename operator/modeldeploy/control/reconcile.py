"""One reconcile pass, as a short script: observe, check, plan, apply, derive status, write.

Level-based and idempotent: every pass recomputes the full desired state from the
spec and what the watches have seen. A pass that finds nothing to change sends no
request. Everything with a side effect outside the API server (the model gate, the
analysis scrape, the clock) is passed in, so the pass runs in unit tests with fakes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.conditions import Reason
from ..api.names import KIND, LABEL_VERSION
from ..api.spec import Analysis, ModelDeployment, spec_error_message
from ..api.status import CheckResult, Counters, ModelDeploymentStatus, RolloutResult, Verdict, VersionStatus
from ..api.times import parse_time, utc_now
from ..children.deployment import BuildOptions
from ..children.desired import desired_state
from ..children.validation import spec_problem
from ..kube.cache import ObjectCache
from ..kube.transport import ApiError
from ..kube.workqueue import RetryLaterError
from ..probes import analysis, custom_metrics, modelgate
from ..probes.custom_metrics import Subjects
from ..probes.pretraffic import PreTrafficRunner
from ..probes.providers import DirectScrape, StableTarget, Target, prometheus_refusal
from ..rollout.canary import analysis_due
from ..rollout.custom_metrics import Subject
from ..rollout.golden import GoldenFileError
from ..rollout.plan import plan as make_plan
from ..rollout.recovery import needs_recovery, recover
from ..rollout.report import derive_status, invalid_spec_status, placed, transition_events
from ..rollout.types import Check, PassFacts, Plan, PlanInputs, PreTrafficVerdict
from ..rollout.webhooks import traffic_allowed
from . import operator_metrics
from .apply import Applier, ApplyRejectedError, NotLeadingError
from .notice_delivery import Notifier
from .observe import Observation, observe
from .pod_checks import PodChecks, PreTrafficGate
from .shard_select import shard_labels
from .webhook_calls import WebhookCalls
from .writes import Writes

LOG = logging.getLogger(__name__)
# A pod whose model gate is still closed is asked again this often.
GATE_RETRY_SECONDS = 1.0
# Model gate probes one pass sends at a time (each bounded by modelgate.PROBE_TIMEOUT_SECONDS).
GATE_PROBES_AT_ONCE = 16

Gate = Callable[[str, str, int], bool]  # (pod IP, model, version) -> AVAILABLE?
Analyse = Callable[[Analysis, Target, Counters | None, str], Check]
CustomMetrics = Callable[[Analysis, Subjects, Check], Check]


def unplaced(namespace: str, name: str) -> tuple[int | None, str | None]:
    """One shard: no shard nor holder in the status, as before shards."""
    return None, None


@dataclass
class Reconciler:
    # The pass's own requests (model gates, status, Events) and its reads beside the cache.
    writes: Writes
    cache: ObjectCache
    # Applies the children, skipping what the cluster already holds.
    applier: Applier
    options: BuildOptions = field(default_factory=BuildOptions)
    clock: Callable[[], str] = utc_now
    gate: Gate = modelgate.version_available
    analyse: Analyse = analysis.check
    judge_metrics: CustomMetrics = custom_metrics.with_custom_metrics
    pre_traffic: PreTrafficGate = field(
        default_factory=lambda: PreTrafficGate(PreTrafficRunner(scrape=DirectScrape().scrape))
    )
    # With leader election: asked again before anything is written, so a replica that lost
    # its lease during a pass stops there (the status write is fenced besides).
    leading: Callable[[], bool] = lambda: True
    # The Prometheus servers an analysis may name (MODELDEPLOY_PROMETHEUS_ALLOWED): none by
    # default, since the operator's pod reaches what a tenant must not.
    prometheus_allowed: tuple[str, ...] = ()
    # The admin's webhooks (MODELDEPLOY_NOTIFICATIONS_CONFIG): told of every status write that
    # landed, so a refused write (a hand-over) notifies nobody and its redo notifies once.
    notifier: Notifier | None = None
    # With several shards: the resource's shard and this replica's identity, recorded in the
    # status it writes (status.shard, status.shardHolder). With one: (None, None), nothing.
    placement: Callable[[str, str], tuple[int | None, str | None]] = unplaced
    # The canaries' webhook gates (MODELDEPLOY_WEBHOOK_ALLOWED): called off the pass, read later.
    webhooks: WebhookCalls = field(default_factory=WebhookCalls)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass; returns seconds until this resource wants another, if it does."""
        try:
            return self._pass(namespace, name)
        except NotLeadingError as exc:
            LOG.warning("%s/%s: pass stopped: %s", namespace, name, exc)
            return None  # the leader, whoever it is now, runs its own passes

    def _pass(self, namespace: str, name: str) -> float | None:
        body = self.cache.get(KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None  # owner references let the garbage collector remove the children
        operator_metrics.track(namespace, name)
        written, unreadable = parse_status(body.get("status"))
        now = self.clock()
        try:
            md = ModelDeployment.from_body(body)
        except ValidationError as exc:
            generation = int(body["metadata"].get("generation", 1))
            invalid = invalid_spec_status(written, spec_error_message(exc), generation, parse_time(now))
            invalid = placed(invalid, *self.placement(namespace, name))
            self._write_status(body, written, invalid, None)
            return None
        world = observe(self.cache, md, body)
        previous, lost = written, None
        if unreadable or needs_recovery(written, world.deployments):
            recovered = recover(written, unreadable, world.deployments, world.actions)
            previous, lost = recovered.status, recovered.lost
            LOG.warning("%s/%s: status rebuilt from children and history; lost: %s", namespace, name, lost)
        moment = parse_time(now)  # the decisions work on datetime; the clock's text is parsed here once
        plan = self._ending_canary(md, previous, world, moment)
        closed_gates, check, verdict = 0, None, None
        if plan is None:  # only a pass that may go on asks the pods anything
            answers = self.webhooks.answers(namespace, name)
            closed_gates, check, verdict = self._probe(md, previous, world, now)
            inputs = PlanInputs(check, world.actions, verdict, answers)
            plan = make_plan(md, previous, world.deployments, moment, inputs)
        facts = PassFacts(
            world.deployments,
            moment,
            fetch_failure=world.fetch_failure(plan.target_version),
            spec_problem=spec_problem(md.spec),
            digests=world.digests,
            recovered_lost=lost,
            pre_traffic_blocked=verdict.blocked if verdict is not None else None,
        )
        if not self.leading():
            return None
        if plan.outcome is not None:
            # Promoting, rolling back or aborting removes or demotes a version: the outcome
            # is recorded (fenced by resourceVersion) before any child changes, so a write
            # refused by a concurrent edit or a lost lease leaves the children untouched,
            # and no later pass can bring back what this one removed.
            recorded = placed(derive_status(md, plan, previous, facts), *self.placement(namespace, name))
            self._write_status(body, written, recorded, check)
            body, written, check = self._current_body(body), recorded, None
        rejected = self._apply(md, plan, facts.spec_problem)
        if rejected is not None:
            facts = replace(facts, rejected=str(rejected), rejected_reason=rejected.reason)
        status = placed(derive_status(md, plan, previous, facts), *self.placement(namespace, name))
        if not self.leading():
            return None
        self._write_status(body, written, status, check)
        # After the write: a pass refused on the way (a lost lease, a concurrent edit) asks nothing.
        self.webhooks.start(namespace, name, plan.webhook_calls)
        if rejected is not None:
            raise RetryLaterError(str(rejected))  # status says why; the work queue backs off
        waits = [
            w for w in (plan.requeue_after, GATE_RETRY_SECONDS if closed_gates else None) if w is not None
        ]
        return min(waits) if waits else None

    def _probe(
        self, md: ModelDeployment, previous: ModelDeploymentStatus, world: Observation, now: str
    ) -> tuple[int, Check | None, PreTrafficVerdict | None]:
        """Ask the pods: open the gates of those whose model is AVAILABLE and whose checks
        passed, read the canary's traffic if a check is due. How many gates stay shut, the
        check, and what the pre-traffic checks found."""
        serving_version = previous.stable.version if previous.stable is not None else None
        checks = self.pre_traffic.prepare(md, world, serving_version, self._read_golden(md.namespace))
        closed_gates = self._open_gates(md, previous, world, checks)
        return closed_gates, self._check_if_due(md, previous, world, now), checks.verdict()

    def _ending_canary(
        self, md: ModelDeployment, previous: ModelDeploymentStatus, world: Observation, moment: datetime
    ) -> Plan | None:
        """The plan of a canary that ends whatever the pods would say (an abort, the progress
        deadline): decided before any probe, so no gate, check or scrape delays it."""
        if previous.canary is None:
            return None
        plan = make_plan(md, previous, world.deployments, moment, PlanInputs(None, world.actions, None))
        ends = plan.outcome is not None and plan.outcome.result is not RolloutResult.PROMOTED
        return plan if ends else None

    def _apply(self, md: ModelDeployment, plan: Plan, problem: str | None) -> ApplyRejectedError | None:
        """Make the cluster hold the plan's children; why one was refused, if it was.
        A spec the children cannot be built from applies nothing (status says why)."""
        if problem is not None:
            return None
        try:
            labels = shard_labels(md.namespace, md.name, self.options.shard_count)
            self.applier.ensure(
                md, _fingerprint(md, plan), lambda: desired_state(md, plan, self.options, labels)
            )
        except ApplyRejectedError as exc:
            return exc
        return None

    def _current_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body the cache holds now: after our own status write, its resourceVersion is
        the one a further write of this pass must be fenced by."""
        meta = body["metadata"]
        return self.cache.get(KIND, meta["namespace"], meta["name"]) or body

    def forget(self, namespace: str, name: str) -> None:
        self.applier.forget(namespace, name)
        operator_metrics.forget(namespace, name)
        self.pre_traffic.forget(namespace, name)
        self.webhooks.forget(namespace, name)

    def _read_golden(self, namespace: str) -> Callable[[str, str], tuple[str | None, str]]:
        def read(name: str, key: str) -> tuple[str | None, str]:
            try:
                config_map = self.writes.read_config_map(namespace, name)
            except ApiError as exc:  # no right to read it (403), the server failing: shown
                raise GoldenFileError(f"cannot read ConfigMap {name}: {exc.status} {exc.reason}") from None
            if config_map is None:
                return None, ""
            data = config_map.get("data") or {}
            version = str(config_map.get("metadata", {}).get("resourceVersion", ""))
            return (str(data[key]) if key in data else None), version

        return read

    def _open_gates(
        self, md: ModelDeployment, previous: ModelDeploymentStatus, world: Observation, checks: PodChecks
    ) -> int:
        """Close the gate of pods whose serving container restarted; open the gate of pods
        whose exact version TF Serving reports AVAILABLE; how many are closed (a canary's pods
        held for its PreTraffic webhook gates are not: the gates' answers queue the resource,
        and until then nothing is asked of those pods). Pods are
        asked at once: each answer may take the probe's whole timeout, and one after
        another twenty slow pods held a worker for twenty seconds."""
        # A serving container that restarted lost the model the gate was opened for.
        closing = world.gates_to_close()
        for pod in closing:
            name, version = pod["metadata"]["name"], pod["metadata"].get("resourceVersion")
            message = "the serving container restarted: out of service until the model is AVAILABLE again"
            self._ensure_leading(name)
            closed = self.writes.close_model_gate(md.namespace, name, "ServingRestarted", message, version)
            self._gate_written(closed)
            LOG.info("model gate of pod %s closed: its serving container restarted", name)
        waiting = world.gates_to_check()
        pods = [p for p in waiting if p["metadata"]["labels"].get(LABEL_VERSION, "").isdigit()]
        unheld = [
            p for p in pods if traffic_allowed(md, previous, int(p["metadata"]["labels"][LABEL_VERSION]))
        ]
        held, pods = len(pods) - len(unheld), unheld

        def available(pod: dict[str, Any]) -> bool:
            version = int(pod["metadata"]["labels"][LABEL_VERSION])
            # The model loaded, then the checks that must pass before any user's request.
            return self.gate(pod["status"]["podIP"], md.model_name, version) and checks.passes(pod)

        if len(pods) > 1:
            with ThreadPoolExecutor(max_workers=min(len(pods), GATE_PROBES_AT_ONCE)) as probes:
                answers = list(probes.map(available, pods))
        else:
            answers = [available(p) for p in pods]
        for pod, open_ in zip(pods, answers, strict=True):
            if open_:
                version = pod["metadata"]["labels"][LABEL_VERSION]
                message = f"TF Serving reports {md.model_name} version {version} AVAILABLE"
                name, seen = pod["metadata"]["name"], pod["metadata"].get("resourceVersion")
                self._ensure_leading(name)
                opened = self.writes.open_model_gate(md.namespace, name, message, seen)
                self._gate_written(opened)
                LOG.info("model %s v%s available on pod %s", md.model_name, version, pod["metadata"]["name"])
        return len(closing) + len(waiting) - held - sum(answers)

    def _ensure_leading(self, pod: str) -> None:
        """Asked before each gate write: the probes before it may take seconds, and a
        replica that lost its lease meanwhile must not set gates (the write is fenced by
        the pod's version besides)."""
        if not self.leading():
            raise NotLeadingError(f"stopped leading before setting the model gate of pod {pod}")

    def _gate_written(self, pod: dict[str, Any] | None) -> None:
        """Write-through: a pass that runs before the pod's watch event arrives (queued by
        another change of the pod meanwhile) must not ask TF Serving and patch it again."""
        if pod is not None:
            self.cache.upsert("Pod", pod)

    def _check_if_due(
        self, md: ModelDeployment, previous: ModelDeploymentStatus, world: Observation, now: str
    ) -> Check | None:
        spec = md.spec.rollout.analysis
        if spec is None or previous.canary is None or not analysis_due(md, previous, parse_time(now)):
            return None
        version = previous.canary.version
        refusal = (
            prometheus_refusal(spec.prometheus.address, self.prometheus_allowed) if spec.prometheus else None
        )
        if refusal is not None:  # never a request to an address the admin did not list
            result = CheckResult(
                at=now, verdict=Verdict.INCONCLUSIVE, message=refusal, reason=Reason.PROMETHEUS_NOT_ALLOWED
            )
            return Check(result, previous.canary.analysis.counters)
        target = Target(
            md.namespace,
            md.model_name,
            version,
            world.serving_pods(version),
            spec.interval_time.total_seconds(),
            spec.window_time.total_seconds(),
            stable=_stable_target(spec, previous, world),
        )
        check = self.analyse(spec, target, previous.canary.analysis.counters, now)
        return self.judge_metrics(spec, _metric_subjects(md, previous.stable, version, spec), check)

    def _write_status(
        self,
        body: dict[str, Any],
        previous: ModelDeploymentStatus,
        status: ModelDeploymentStatus,
        check: Check | None,
    ) -> None:
        if status == previous:
            return
        meta = body["metadata"]
        try:
            written = self.writes.patch_status(
                meta["namespace"], meta["name"], dump_status(status), meta.get("resourceVersion")
            )
        except ApiError as exc:
            if exc.status != 409:
                raise
            # Written since this pass read it (a person, or a replica that leads now): what
            # was computed is dropped, never forced; the next pass starts from the new body.
            fresh = self.writes.read_model_deployment(meta["namespace"], meta["name"])
            if fresh is not None:
                self.cache.upsert(KIND, fresh)
            raise RetryLaterError("the resource changed while this pass ran; computing again", 0.05) from None
        # Write-through: a pass before our own watch event arrives must see this status,
        # or it would recompute transition times and write again.
        self.cache.upsert(KIND, written)
        verdict = check.result.verdict if check is not None else None
        operator_metrics.record_status_change(meta["namespace"], meta["name"], previous, status, verdict)
        for event in transition_events(previous, status):
            log_decision(body, event.type, event.reason, event.message)
            self.writes.post_event(body, event.type, event.reason, event.message)
        if self.notifier is not None:
            self.notifier.status_changed(body, previous, status, utc_now())


def log_decision(body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """One log line per decision (the same as its Event), naming the resource and the version
    its spec asks for. With kopf's ``--log-format=json`` the resource is the line's ``object``
    field (kopf's own key), ``decision`` the reason and ``version`` the version; as text the
    line starts with ``[namespace/name]``."""
    meta = body["metadata"]
    ref = {
        "apiVersion": body.get("apiVersion", ""),
        "kind": KIND,
        "namespace": meta["namespace"],
        "name": meta["name"],
    }
    version = ((body.get("spec") or {}).get("model") or {}).get("version")
    LOG.log(
        logging.WARNING if type_ == "Warning" else logging.INFO,
        "%s: %s",
        reason,
        message,
        # k8s_skip: kopf must not post this line as one more Event; the pass posts its own.
        extra={"k8s_ref": ref, "k8s_skip": True, "decision": reason, "version": version},
    )


def _fingerprint(md: ModelDeployment, plan: Plan) -> tuple[Any, ...]:
    """Everything the children are built from: the spec (by generation) and the plan."""
    return (
        md.uid,
        md.generation,
        tuple(plan.apply),
        tuple(plan.delete),
        plan.serving_version,
        plan.target_version,
        plan.canary.version if plan.canary else None,
        plan.route_weight,
    )


def _metric_subjects(
    md: ModelDeployment, stable: VersionStatus | None, version: int, spec: Analysis
) -> Subjects:
    """What the custom metrics' placeholders name: the canary's ``version`` and, where another
    version serves as the stable, the stable's."""
    window = spec.window_time.total_seconds()
    serving = stable.version if stable is not None and stable.version != version else None
    return Subjects(
        Subject(md.namespace, md.name, version, window),
        None if serving is None else Subject(md.namespace, md.name, serving, window),
    )


def _stable_target(
    spec: Analysis, previous: ModelDeploymentStatus, world: Observation
) -> StableTarget | None:
    """What a relative check compares the canary with: the stable version's serving pods."""
    stable, canary = previous.stable, previous.canary
    if spec.relative is None or stable is None or canary is None or stable.version == canary.version:
        return None
    pods = world.serving_pods(stable.version)
    return StableTarget(stable.version, pods, canary.analysis.stable_counters) if pods else None


def parse_status(raw: dict[str, Any] | None) -> tuple[ModelDeploymentStatus, tuple[str, ...]]:
    """Status as written, and the fields that could not be read (kept out, never a crash).

    Field by field: one unreadable field (a newer operator's, a hand edit) must not take
    failedVersions and handledActions down with it.
    """
    raw = raw if isinstance(raw, dict) else {}
    try:
        return ModelDeploymentStatus.model_validate(raw), ()
    except ValidationError:
        pass
    readable: dict[str, Any] = {}
    unreadable: list[str] = []
    for key, value in raw.items():
        try:
            ModelDeploymentStatus.model_validate({key: value})
        except ValidationError:
            unreadable.append(key)
        else:
            readable[key] = value
    LOG.warning("status fields %s do not match the schema; left out", unreadable)
    return ModelDeploymentStatus.model_validate(readable), tuple(unreadable)


def dump_status(status: ModelDeploymentStatus) -> dict[str, Any]:
    dumped: dict[str, Any] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped
