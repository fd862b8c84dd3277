"""Pre-traffic checks without a cluster: signature differences, golden files and answers,
warm-up bodies, the per-pod runner on scripted replies, and what the plan does with a
failed check. The integration suite runs them against the real model server."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modeldeploy.api.spec import PreTraffic, SignaturePolicy, Tolerance
from modeldeploy.api.status import (
    CanaryStatus,
    ModelDeploymentStatus,
    PodCounters,
    RolloutResult,
    SignatureResult,
    VersionStatus,
)
from modeldeploy.api.times import parse_time
from modeldeploy.probes.pretraffic import PreTrafficRunner, ServingRef
from modeldeploy.rollout.golden import GoldenFileError, mismatch, parse_golden, warmup_bodies
from modeldeploy.rollout.signature import Signature, Tensor, differences, parse_metadata
from modeldeploy.rollout.status import derive_status, transition_events
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
    spec = {"warmupRequests": 3, "goldenRequests": {"configMapRef": {"name": "g", "key": "k"}}}
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
