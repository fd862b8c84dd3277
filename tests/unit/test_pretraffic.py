"""Pre-traffic checks without a cluster: signature differences, golden files and answers,
warm-up bodies, the per-pod runner on scripted replies, and what the plan does with a
failed check. The integration suite runs them against the real model server."""

from __future__ import annotations

import copy
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from modeldeploy.api.names import LABEL_MODEL_AVAILABLE
from modeldeploy.api.spec import PreTraffic, SignaturePolicy, Tolerance
from modeldeploy.api.status import (
    ActionValues,
    CanaryStatus,
    ModelDeploymentStatus,
    PodCounters,
    PreTrafficStatus,
    RolloutResult,
    SignatureResult,
    VersionStatus,
)
from modeldeploy.api.times import parse_time
from modeldeploy.control.observe import Observation
from modeldeploy.control.pod_checks import PreTrafficGate
from modeldeploy.probes.pretraffic import PreTrafficRunner, ServingRef
from modeldeploy.rollout.bounded_json import MAX_DEPTH, loads_bounded
from modeldeploy.rollout.golden import (
    MAX_WARMUP_ELEMENTS,
    GoldenFileError,
    WarmupTooLargeError,
    mismatch,
    parse_golden,
    warmup_bodies,
)
from modeldeploy.rollout.report import derive_status, transition_events
from modeldeploy.rollout.signature import Signature, Tensor, differences, parse_metadata
from modeldeploy.rollout.types import PassFacts, PlanInputs, PreTrafficVerdict

from .objects import SAMPLE_SPEC, T0, make_plan, model_deployment, observed_deployment


def metadata(
    inputs: dict[str, str], outputs: dict[str, str], shape: list[int] | None = None
) -> dict[str, Any]:
    """A REST metadata reply as TF Serving writes it (sizes as strings, an init op)."""

    def tensors(named: dict[str, str]) -> dict[str, Any]:
        dims = [{"size": str(d), "name": ""} for d in (shape or [-1])]
        return {
            name: {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": f"{name}:0"}
            for name, dtype in named.items()
        }

    return {
        "model_spec": {"name": "mnist", "version": "1"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {"inputs": tensors(inputs), "outputs": tensors(outputs)},
                    "__saved_model_init_op": {"inputs": {}, "outputs": {}},
                }
            }
        },
    }


STABLE = parse_metadata(metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}))


@pytest.mark.parametrize(
    ("candidate", "policy", "expected"),
    [
        (metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}), SignaturePolicy.IDENTICAL, []),
        (
            metadata({"x": "DT_DOUBLE"}, {"y": "DT_FLOAT"}),
            SignaturePolicy.COMPATIBLE,
            ["input 'x': DT_FLOAT -> DT_DOUBLE"],
        ),
        (
            metadata({"inputs": "DT_FLOAT"}, {"y": "DT_FLOAT"}),
            SignaturePolicy.COMPATIBLE,
            ["input 'x' removed", "input 'inputs' added"],
        ),
        (metadata({"x": "DT_FLOAT"}, {"z": "DT_FLOAT"}), SignaturePolicy.COMPATIBLE, ["output 'y' removed"]),
        (
            metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT", "doubled": "DT_FLOAT"}),
            SignaturePolicy.COMPATIBLE,
            [],
        ),
        (
            metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT", "doubled": "DT_FLOAT"}),
            SignaturePolicy.IDENTICAL,
            ["output 'doubled' added"],
        ),
        (
            metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}, shape=[-1, 3]),
            SignaturePolicy.COMPATIBLE,
            [
                "input 'x': shape [-1] -> [-1,3]",
                "output 'y': shape [-1] -> [-1,3]",
            ],
        ),
        (metadata({"inputs": "DT_INT64"}, {}), SignaturePolicy.IGNORE, []),
    ],
)
def test_signature_differences_are_spelled_out(
    candidate: dict[str, Any], policy: SignaturePolicy, expected: list[str]
) -> None:
    assert differences(STABLE, parse_metadata(candidate), policy) == expected


def test_a_fixed_size_accepts_what_a_free_one_did_not() -> None:
    fixed = {"serving_default": Signature({"x": Tensor("DT_FLOAT", (3,))}, {})}
    free = {"serving_default": Signature({"x": Tensor("DT_FLOAT", (-1,))}, {})}
    assert differences(fixed, free, SignaturePolicy.COMPATIBLE) == []  # [3] still fits [-1]
    assert differences(free, fixed, SignaturePolicy.COMPATIBLE) == ["input 'x': shape [-1] -> [3]"]


def test_a_golden_file_is_read_line_by_line_and_a_bad_line_is_named() -> None:
    text = '{"instances": [1.0], "expected": [2.5]}\n\n{"inputs": {"x": [2.0]}}\n'
    requests = parse_golden(text, "ConfigMap g key k")
    assert [r.line for r in requests] == [1, 3]
    assert json.loads(requests[0].body) == {"instances": [1.0]}  # 'expected' is not sent
    assert requests[0].expected == [2.5]
    assert requests[1].expected is None
    with pytest.raises(GoldenFileError, match="ConfigMap g key k line 2 is not JSON"):
        parse_golden('{"instances": [1]}\n{"instances": [1\n', "ConfigMap g key k")
    with pytest.raises(GoldenFileError, match="line 1 has neither 'instances' nor 'inputs'"):
        parse_golden('{"x": 1}', "ConfigMap g key k")
    with pytest.raises(GoldenFileError, match="holds no requests"):
        parse_golden("\n\n", "ConfigMap g key k")


def test_answers_match_within_the_tolerance_and_a_mismatch_says_where() -> None:
    tight = Tolerance()
    assert mismatch([2.5, 3.0], [2.5000001, 3.0], tight) is None
    assert mismatch([2.5], [3.5], tight) == "[0]: expected 2.5, got 3.5"
    assert mismatch([2.5], [3.5], Tolerance(absolute=1.5)) is None
    assert mismatch([{"y": 1.0}], [{"y": 1.0, "doubled": 2.0}], tight) is None  # added outputs are fine
    assert mismatch({"y": [1.0]}, {"z": [1.0]}, tight) == "answer: output 'y' missing"
    assert mismatch([1.0, 2.0], [1.0], tight) == "answer: expected [1.0, 2.0], got [1.0]"
    long = mismatch(["a" * 500], ["b"], tight)
    assert long is not None
    assert len(long) < 300


def test_warmup_uses_the_golden_requests_in_turn_or_zeros_shaped_by_the_signature() -> None:
    golden = parse_golden('{"instances": [1.0]}\n{"instances": [2.0]}', "g")
    assert [json.loads(b) for b in warmup_bodies(golden, STABLE, 3)] == [
        {"instances": [1.0]},
        {"instances": [2.0]},
        {"instances": [1.0]},
    ]
    assert [json.loads(b) for b in warmup_bodies(None, STABLE, 2)] == [{"inputs": {"x": [0]}}] * 2
    matrix = {"serving_default": Signature({"s": Tensor("DT_STRING", (-1, 2))}, {})}
    assert json.loads(warmup_bodies(None, matrix, 1)[0]) == {"inputs": {"s": [["", ""]]}}
    assert warmup_bodies(None, STABLE, 0) == []


class ScriptedPods:
    """Two pods' REST APIs: the new version on 10.0.0.2, the serving one on 10.0.0.1."""

    def __init__(self, new: dict[str, Any], offset: float, refuse_from: float | None = None) -> None:
        self.new_metadata, self.offset, self.refuse_from = new, offset, refuse_from
        self.sent: list[tuple[str, str]] = []

    def __call__(self, url: str, body: bytes | None) -> tuple[int, bytes]:
        ip = url.split("/")[2].split(":")[0]
        self.sent.append((ip, "metadata" if body is None else "predict"))
        if body is None:
            reply = self.new_metadata if ip == "10.0.0.2" else metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
            return 200, json.dumps(reply).encode()
        xs = json.loads(body)["instances"]
        offset = self.offset if ip == "10.0.0.2" else 2.0
        if ip == "10.0.0.2" and self.refuse_from is not None and any(x >= self.refuse_from for x in xs):
            return 400, b'{"error": "input must be below 5"}'
        return 200, json.dumps({"predictions": [0.5 * x + offset for x in xs]}).encode()


GOLDEN = '{"instances": [1.0], "expected": [2.5]}\n{"instances": [6.0], "expected": [5.0]}\n'


def run(spec: dict[str, Any], pods: ScriptedPods, golden: str | None = GOLDEN) -> Any:
    counters = PodCounters(requests=7)
    runner = PreTrafficRunner(request=pods, scrape=lambda model, ip: counters)
    requests = parse_golden(golden, "g") if golden is not None else None
    return runner.check(
        PreTraffic.model_validate(spec), "mnist", 2, "10.0.0.2", ServingRef(1, "10.0.0.1"), requests
    )


def test_a_changed_signature_fails_before_any_request_is_sent() -> None:
    pods = ScriptedPods(metadata({"inputs": "DT_FLOAT"}, {"y": "DT_FLOAT"}), 2.0)
    result = run({"warmupRequests": 5}, pods)
    assert result.failure == ("SignatureChanged", "version 2: input 'x' removed; input 'inputs' added")
    assert result.status.signature.result is SignatureResult.INCOMPATIBLE
    assert ("10.0.0.2", "predict") not in pods.sent


def test_golden_expected_fails_on_wrong_answers_and_passes_within_the_tolerance() -> None:
    same_signature = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    spec: dict[str, Any] = {
        "warmupRequests": 3,
        "goldenRequests": {"configMapRef": {"name": "g", "key": "k"}},
    }
    wrong = run(spec, ScriptedPods(same_signature, 3.0))
    assert wrong.failure is not None
    assert wrong.failure[0] == "GoldenRequestsFailed"
    assert wrong.status.golden.passed == 0
    assert wrong.status.golden.first_mismatch == "request 1 (line 1): [0]: expected 2.5, got 3.5"
    assert wrong.status.warmed_up
    tolerant = copy.deepcopy(spec)
    tolerant["goldenRequests"]["tolerance"] = {"absolute": 1.5}
    passed = run(tolerant, ScriptedPods(same_signature, 3.0))
    assert passed.passed
    assert passed.status.golden.agreement == 1.0
    assert passed.baseline == PodCounters(requests=7)  # read after the checks: the analysis starts here


def test_golden_against_the_stable_measures_agreement() -> None:
    same_signature = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    spec = {
        "goldenRequests": {
            "configMapRef": {"name": "g", "key": "k"},
            "compareTo": "Stable",
            "minAgreement": 0.5,
        }
    }
    differ = run(spec, ScriptedPods(same_signature, 3.0))
    assert differ.status.golden.agreement == 0.0
    assert differ.failure is not None
    assert "agreement 0.00 with version 1 is under 0.5" in differ.failure[1]
    agree = run(spec, ScriptedPods(same_signature, 2.0))
    assert agree.passed
    assert agree.status.golden.agreement == 1.0


def test_a_golden_request_the_model_refuses_fails_with_its_line() -> None:
    same_signature = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    spec = {"goldenRequests": {"configMapRef": {"name": "g", "key": "k"}}}
    refused = run(spec, ScriptedPods(same_signature, 2.0, refuse_from=5.0))
    assert refused.failure is not None
    assert refused.status.golden.first_mismatch.startswith(
        "request 2 (line 2): the model refused it: HTTP 400"
    )


def test_a_pod_that_does_not_answer_is_asked_again_not_failed() -> None:
    def down(url: str, body: bytes | None) -> tuple[int, bytes]:
        return 503, b""

    result = PreTrafficRunner(request=down).check(
        PreTraffic(), "mnist", 2, "10.0.0.2", ServingRef(1, "10.0.0.1"), None
    )
    assert result.retry is not None
    assert result.failure is None
    assert not result.passed


def canary_md() -> Any:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Canary", "steps": [{"weight": 50, "pause": "5m"}], "preTraffic": {}}
    spec["model"]["version"] = 3
    return model_deployment(spec)


SERVING_2 = ModelDeploymentStatus(
    observed_generation=1,
    stable=VersionStatus(version=2, replicas=2, ready_replicas=2),
    canary=CanaryStatus(version=3, weight=50, started_at=T0),
)
FAILED_3 = PreTrafficVerdict(3, failure=("SignatureChanged", "version 3: input 'x' removed"))


def test_a_canary_that_fails_its_checks_is_rolled_back_with_the_reason() -> None:
    md = canary_md()
    observed = {
        2: observed_deployment(2, replicas=2, ready=2),
        3: observed_deployment(3, replicas=1, ready=0),
    }
    plan = make_plan(md, SERVING_2, observed, T0, PlanInputs(pre_traffic=FAILED_3))
    assert plan.serving_version == 2
    assert plan.delete == [3]
    assert plan.failed_versions == [3]
    assert plan.outcome is not None
    assert plan.outcome.result is RolloutResult.ROLLED_BACK
    status = derive_status(md, plan, SERVING_2, PassFacts(observed, parse_time(T0)))
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "SignatureChanged")
    assert "input 'x' removed" in degraded.message
    assert status.history[-1].reason == "SignatureChanged: version 3: input 'x' removed"
    events = transition_events(SERVING_2, status)
    assert any(e.reason == "SignatureChanged" and e.type == "Warning" for e in events)
    # The next pass holds it back, as any rolled-back version.
    again = make_plan(md, status, {2: observed_deployment(2, replicas=2, ready=2)}, T0)
    assert again.held_back is not None
    assert [v.version for v in again.apply] == [2]


def test_immediate_never_switches_to_a_version_that_fails_its_checks() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Immediate", "preTraffic": {}}
    spec["model"]["version"] = 3
    md = model_deployment(spec)
    observed = {
        2: observed_deployment(2, replicas=2, ready=2),
        3: observed_deployment(3, replicas=2, ready=2),
    }
    serving = SERVING_2.model_copy(update={"canary": None})
    plan = make_plan(md, serving, observed, T0, PlanInputs(pre_traffic=FAILED_3))
    assert plan.serving_version == 2
    assert plan.delete == [3]
    assert plan.failed_versions == [3]


def test_a_first_version_that_fails_keeps_its_pods_shut_and_says_why() -> None:
    md = canary_md()
    observed = {3: observed_deployment(3, replicas=2, ready=0)}
    plan = make_plan(md, ModelDeploymentStatus(), observed, T0, PlanInputs(pre_traffic=FAILED_3))
    assert plan.serving_version is None
    assert plan.delete == []
    status = derive_status(md, plan, ModelDeploymentStatus(), PassFacts(observed, parse_time(T0)))
    assert status.phase is not None
    assert status.phase.value == "Failed"
    again = make_plan(md, status, observed, T0)
    assert again.held_back == "version 3 failed its pre-traffic checks"
    shown = derive_status(md, again, status, PassFacts(observed, parse_time(T0)))
    degraded = next(c for c in shown.conditions if c.type == "Degraded")
    assert degraded.reason == "SignatureChanged"


def test_the_analysis_starts_from_the_counters_read_after_the_checks() -> None:
    md = canary_md()
    observed = {
        2: observed_deployment(2, replicas=2, ready=2),
        3: observed_deployment(3, replicas=1, ready=1),
    }
    verdict = PreTrafficVerdict(3, baselines={"mnist-v3-a": PodCounters(requests=13, errors=1)})
    plan = make_plan(md, SERVING_2, observed, T0, PlanInputs(pre_traffic=verdict))
    assert plan.canary is not None
    counters = plan.canary.analysis.counters
    assert counters is not None
    assert counters.pods == {"mnist-v3-a": PodCounters(requests=13, errors=1)}
    assert counters.requests == 13


BAD_CANARY = metadata({"inputs": "DT_FLOAT"}, {"y": "DT_FLOAT"})  # input 'x' removed
STABLE_GOLDEN = {
    "signature": "Compatible",
    "goldenRequests": {"configMapRef": {"name": "g", "key": "k"}, "compareTo": "Stable"},
}


def test_a_canary_with_no_serving_pod_to_compare_with_waits_and_sends_nothing() -> None:
    pods = ScriptedPods(BAD_CANARY, 40.0)  # a removed input and garbage answers
    runner = PreTrafficRunner(request=pods, scrape=lambda model, ip: PodCounters())
    result = runner.check(
        PreTraffic.model_validate(STABLE_GOLDEN),
        "mnist",
        2,
        "10.0.0.2",
        ServingRef(1, None),  # version 1 serves, but none of its pods is serving right now
        parse_golden(GOLDEN, "g"),
    )
    assert not result.passed
    assert result.failure is None
    assert result.waiting == "waiting for a serving pod of version 1 to compare with"
    assert result.status.waiting_for == result.waiting
    assert pods.sent == []


def test_only_a_first_version_skips_the_comparisons_and_says_none_ran() -> None:
    same = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    runner = PreTrafficRunner(request=ScriptedPods(same, 2.0))
    first = runner.check(
        PreTraffic.model_validate(STABLE_GOLDEN), "mnist", 2, "10.0.0.2", None, parse_golden(GOLDEN, "g")
    )
    assert first.passed
    assert first.status.signature.result is SignatureResult.SKIPPED
    assert first.status.golden.compared_with is None
    compared = runner.check(
        PreTraffic.model_validate(STABLE_GOLDEN),
        "mnist",
        2,
        "10.0.0.2",
        ServingRef(1, "10.0.0.1"),
        parse_golden(GOLDEN, "g"),
    )
    assert compared.passed
    assert compared.status.signature.result is SignatureResult.COMPATIBLE
    assert compared.status.golden.compared_with == 1


def test_no_serving_pod_to_compare_with_is_no_reason_to_wait_when_nothing_is_compared() -> None:
    same = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    spec = PreTraffic.model_validate({"signature": "Ignore", "warmupRequests": 0})
    result = PreTrafficRunner(request=ScriptedPods(same, 2.0)).check(
        spec, "mnist", 2, "10.0.0.2", ServingRef(1, None), None
    )
    assert result.passed
    assert result.status.signature.result is SignatureResult.SKIPPED


def gate_pod(name: str, version: int, ip: str, serving: bool) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "mnist", "serving.modeldeploy.dev/version": str(version)}
    if serving:
        labels[LABEL_MODEL_AVAILABLE] = "true"
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": labels},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
            ],
        },
    }


def test_the_gate_stays_shut_while_the_serving_version_has_no_pod_then_checks_it() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    steps = [{"weight": 50, "pause": "5m"}]
    spec["rollout"] = {"strategy": "Canary", "steps": steps, "preTraffic": STABLE_GOLDEN}
    spec["model"]["version"] = 2
    md = model_deployment(spec)
    pods = ScriptedPods(BAD_CANARY, 40.0)
    gate = PreTrafficGate(PreTrafficRunner(request=pods))
    canary_pod = gate_pod("mnist-v2-a", 2, "10.0.0.2", serving=False)
    restarting = gate_pod("mnist-v1-a", 1, "10.0.0.1", serving=False)  # its gate closed: restarting

    def world(*bodies: dict[str, Any]) -> Observation:
        return Observation(list(bodies), list(bodies), {}, {}, ActionValues())

    def read_golden(name: str, key: str) -> tuple[str | None, str]:
        return GOLDEN, "7"

    checks = gate.prepare(md, world(restarting, canary_pod), 1, read_golden)
    assert not checks.passes(canary_pod)
    verdict = checks.verdict()
    assert verdict is not None
    assert verdict.failure is None
    assert verdict.status is not None
    assert verdict.status.waiting_for == "waiting for a serving pod of version 1 to compare with"
    assert pods.sent == []
    # Still nothing to compare with on the next pass: still shut, nothing remembered as passed.
    again = gate.prepare(md, world(restarting, canary_pod), 1, read_golden)
    assert not again.passes(canary_pod)
    # The serving pod is back: the comparison runs and finds the removed input.
    back = gate_pod("mnist-v1-a", 1, "10.0.0.1", serving=True)
    checked = gate.prepare(md, world(back, canary_pod), 1, read_golden)
    assert not checked.passes(canary_pod)
    found = checked.verdict()
    assert found is not None
    assert found.failure is not None
    assert found.failure[0] == "SignatureChanged"


def test_a_canary_waiting_for_a_serving_pod_says_so_in_progressing() -> None:
    md = canary_md()
    observed = {
        2: observed_deployment(2, replicas=1, ready=0),
        3: observed_deployment(3, replicas=1, ready=0),
    }
    waiting = "waiting for a serving pod of version 2 to compare with"
    verdict = PreTrafficVerdict(3, status=PreTrafficStatus(waiting_for=waiting))
    plan = make_plan(md, SERVING_2, observed, T0, PlanInputs(pre_traffic=verdict))
    status = derive_status(md, plan, SERVING_2, PassFacts(observed, parse_time(T0)))
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "WaitingForComparison"
    assert waiting in progressing.message
    assert status.canary is not None
    assert status.canary.pre_traffic is not None
    assert status.canary.pre_traffic.waiting_for == waiting


DEEP = b"[" * 100_000 + b"]" * 100_000  # past any recursion limit of the json module


def test_deeply_nested_json_is_refused_without_recursing() -> None:
    assert loads_bounded(b'{"a": [[1, "]]]]"], {"b": "\\"[["}]}') == {"a": [[1, "]]]]"], {"b": '"[['}]}
    assert loads_bounded("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match="nested deeper than"):
        loads_bounded("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="nested deeper than"):
        loads_bounded(DEEP)


def test_a_golden_line_nested_too_deep_is_named_not_a_crash() -> None:
    line = '{"instances": ' + "[" * 5000 + "1" + "]" * 5000 + "}"
    with pytest.raises(GoldenFileError, match=r"ConfigMap g key k line 2 is not JSON: .*nested deeper"):
        parse_golden('{"instances": [1]}\n' + line, "ConfigMap g key k")


def test_deeply_nested_replies_from_pods_are_asked_again_not_a_crash() -> None:
    def deep(url: str, body: bytes | None) -> tuple[int, bytes]:
        return 200, DEEP

    result = PreTrafficRunner(request=deep).check(
        PreTraffic(), "mnist", 2, "10.0.0.2", ServingRef(1, "10.0.0.1"), None
    )
    assert result.retry is not None
    assert "nested deeper" in result.retry


class StableWithoutAnswers(ScriptedPods):
    """The serving version answers 200 with neither 'predictions' nor 'outputs'."""

    def __call__(self, url: str, body: bytes | None) -> tuple[int, bytes]:
        if body is not None and url.startswith("http://10.0.0.1:"):
            self.sent.append(("10.0.0.1", "predict"))
            return 200, b'{"result": "ok"}'
        return super().__call__(url, body)


def test_a_serving_reply_without_an_answer_is_a_mismatch_of_that_request_not_a_crash() -> None:
    same = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
    spec = {"goldenRequests": {"configMapRef": {"name": "g", "key": "k"}, "compareTo": "Stable"}}
    result = run(spec, StableWithoutAnswers(same, 2.0))
    assert result.failure is not None
    assert result.failure[0] == "GoldenRequestsFailed"
    assert result.status.golden.passed == 0
    assert (
        "the serving version 1: the reply has neither 'predictions' nor 'outputs'"
        in result.status.golden.first_mismatch
    )


@pytest.mark.parametrize(
    "shape",
    [
        (1, 2000, 2000, 3),  # an image model: hundreds of MiB as Python lists
        (10**5, 10**5, 10**5),  # what a short metadata reply can declare
    ],
)
def test_a_model_too_large_for_synthetic_warmup_builds_nothing(shape: tuple[int, ...]) -> None:
    huge = {"serving_default": Signature({"x": Tensor("DT_FLOAT", shape)}, {})}
    with pytest.raises(WarmupTooLargeError, match=f"more than {MAX_WARMUP_ELEMENTS} elements"):
        warmup_bodies(None, huge, 10)
    assert warmup_bodies(parse_golden('{"instances": [1.0]}', "g"), huge, 2) == [b'{"instances": [1.0]}'] * 2


def test_a_model_too_large_for_warmup_is_checked_without_it_and_says_why() -> None:
    huge = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}, shape=[-1, 2000, 2000, 3])
    pods = ScriptedPods(huge, 2.0)
    golden = {"configMapRef": {"name": "g", "key": "k"}}
    spec = {"signature": "Ignore", "warmupRequests": 10, "goldenRequests": golden}
    runner = PreTrafficRunner(request=pods)
    result = runner.check(PreTraffic.model_validate(spec), "mnist", 2, "10.0.0.2", None, None)
    assert result.passed  # warm-up is an optimisation: its absence does not hold the pod
    assert not result.status.warmed_up
    assert result.status.warmup_skipped is not None
    assert "too large for synthetic warm-up" in result.status.warmup_skipped
    assert ("10.0.0.2", "predict") not in pods.sent
    # The golden requests, correctness, still run and still decide (and warm the model up).
    wrong = PreTrafficRunner(request=ScriptedPods(huge, 3.0)).check(
        PreTraffic.model_validate(spec), "mnist", 2, "10.0.0.2", None, parse_golden(GOLDEN, "g")
    )
    assert wrong.failure is not None
    assert wrong.failure[0] == "GoldenRequestsFailed"
    assert wrong.status.warmed_up


def test_checks_that_outlast_their_budget_end_blocked_not_started_again() -> None:
    """Every request of one pod's checks draws on one budget: a slow model with many warm-up
    requests is held shut with a reason, and its checks are not begun anew on every pass."""
    ticks = iter(range(0, 1000, 10))  # each request takes ten seconds on this clock
    pods = ScriptedPods(metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}), 2.0)
    runner = PreTrafficRunner(request=pods, budget_seconds=35.0, clock=lambda: float(next(ticks)))
    spec = PreTraffic.model_validate({"warmupRequests": 50})
    warmup = parse_golden(GOLDEN, "g")  # the warm-up sends the golden bodies in turn
    result = runner.check(spec, "mnist", 2, "10.0.0.2", ServingRef(1, "10.0.0.1"), warmup)
    assert result.retry is None
    assert result.blocked == "version 2: the checks did not finish within their 35s budget"
    assert len(pods.sent) < 10, "the budget stopped the warm-up"


def test_checks_run_off_the_pass_and_a_later_pass_reads_them() -> None:
    """The pass that starts a pod's checks does not wait for them: its gate stays shut, the
    resource is queued when they end, and the next pass opens it on their result."""
    release = threading.Event()
    pods = ScriptedPods(metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"}), 2.0)

    def slow(url: str, body: bytes | None) -> tuple[int, bytes]:
        assert release.wait(30), "the test never let the checks finish"
        return pods(url, body)

    done: list[tuple[str, str]] = []
    ended = threading.Event()

    def queued(namespace: str, name: str) -> None:
        done.append((namespace, name))
        ended.set()

    with ThreadPoolExecutor(max_workers=1) as executor:
        gate = PreTrafficGate(PreTrafficRunner(request=slow), executor=executor, on_done=queued)
        spec = copy.deepcopy(SAMPLE_SPEC)
        spec["rollout"] = {"strategy": "Immediate", "preTraffic": {"warmupRequests": 0}}
        md = model_deployment(spec)
        new_pod = gate_pod("mnist-v3-a", 3, "10.0.0.2", serving=False)
        world = Observation([new_pod], [new_pod], {}, {}, ActionValues())
        checks = gate.prepare(md, world, None, lambda name, key: (None, ""))
        assert not checks.passes(new_pod), "the checks are under way: the gate stays shut"
        assert checks.passes(new_pod) is False, "asked again in the same pass: still under way, not restarted"
        assert done == []
        release.set()
        assert ended.wait(30)
        assert done == [("ml", "mnist")]
        later = gate.prepare(md, world, None, lambda name, key: (None, ""))
        assert later.passes(new_pod)
        assert pods.sent == [("10.0.0.2", "metadata")], "checked once, off the pass"
