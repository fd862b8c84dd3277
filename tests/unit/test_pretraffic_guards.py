"""The edges of the pre-traffic checks: the golden file and answers, synthetic warm-up, and
the per-pod runner's statuses, comparisons, budget and bounds. Each test holds a guard that
mutation testing (make mutation) found no test holding."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.api.spec import PreTraffic, Tolerance
from modeldeploy.api.status import SignatureResult
from modeldeploy.probes import bounded_http
from modeldeploy.probes.pretraffic import PodCheck, PreTrafficRunner, ServingRef
from modeldeploy.rollout.golden import (
    GoldenFileError,
    WarmupTooLargeError,
    answer_of,
    mismatch,
    parse_golden,
    warmup_bodies,
)
from modeldeploy.rollout.signature import Signature, Tensor

from .test_pretraffic import GOLDEN, ScriptedPods, metadata

pytestmark = pytest.mark.timeout(30)

SAME = metadata({"x": "DT_FLOAT"}, {"y": "DT_FLOAT"})
METADATA = json.dumps(SAME).encode()
NEW_IP, STABLE_IP = "10.0.0.2", "10.0.0.1"
SERVING = ServingRef(1, STABLE_IP)
Request = Callable[[str, bytes | None], tuple[int, bytes]]


def golden_spec(**golden: Any) -> dict[str, Any]:
    return {"goldenRequests": {"configMapRef": {"name": "g", "key": "k"}, **golden}}


def check(
    spec: dict[str, Any],
    request: Request,
    golden: str | None = GOLDEN,
    serving: ServingRef | None = SERVING,
    **runner: Any,
) -> PodCheck:
    requests = parse_golden(golden, "g") if golden is not None else None
    return PreTrafficRunner(request=request, **runner).check(
        PreTraffic.model_validate(spec), "mnist", 2, NEW_IP, serving, requests
    )


def answering(new: Callable[[list[float]], tuple[int, bytes]], stable: Any = None) -> Request:
    """Pods whose metadata agree; the new pod answers a predict body's instances with
    ``new``, the serving one with ``stable`` (the instances themselves when None)."""

    def request(url: str, body: bytes | None) -> tuple[int, bytes]:
        if body is None:
            return 200, METADATA
        xs = json.loads(body)["instances"]
        if url.startswith(f"http://{NEW_IP}:"):
            return new(xs)
        return 200, json.dumps(stable if stable is not None else {"predictions": xs}).encode()

    return request


def echo(xs: list[float]) -> tuple[int, bytes]:
    return 200, json.dumps({"predictions": xs}).encode()


# The golden file and the answers.


def test_a_golden_file_holds_at_most_a_thousand_requests() -> None:
    assert len(parse_golden('{"instances": [1]}\n' * 1000, "g")) == 1000
    with pytest.raises(GoldenFileError, match="g holds more than 1000 requests"):
        parse_golden('{"instances": [1]}\n' * 1001, "g")


def test_a_golden_line_that_is_json_but_not_an_object_is_named() -> None:
    with pytest.raises(GoldenFileError, match="g line 2 is not a JSON object"):
        parse_golden('{"instances": [1]}\n[1, 2]\n', "g")


def test_an_answer_is_the_predictions_else_the_outputs() -> None:
    assert answer_of({"predictions": [1], "outputs": [2]}) == [1]
    assert answer_of({"outputs": {"y": [2]}}) == {"y": [2]}
    for reply in ({"result": 1}, [1], "predictions"):
        with pytest.raises(ValueError, match="neither 'predictions' nor 'outputs'"):
            answer_of(reply)


@pytest.mark.parametrize(
    ("expected", "got", "tolerance", "found"),
    [
        (100.0, 100.9, Tolerance(absolute=0, relative=0.01), None),  # 1% of 100
        (-100.0, -100.9, Tolerance(absolute=0, relative=0.01), None),  # of |expected|
        (100.0, 101.1, Tolerance(absolute=0, relative=0.01), "answer: expected 100.0, got 101.1"),
        (100.0, 101.4, Tolerance(absolute=0.5, relative=0.01), None),  # the two add up
        (1.0, "1.0", Tolerance(), 'answer: expected 1.0, got "1.0"'),
        ("a", "a", Tolerance(), None),
        ([1.0], {"0": 1.0}, Tolerance(), 'answer: expected [1.0], got {"0": 1.0}'),
        ({"y": 1.0}, [1.0], Tolerance(), 'answer: expected {"y": 1.0}, got [1.0]'),
        ({"y": [1.0, 2.0]}, {"y": [1.0, 3.0]}, Tolerance(), "y[1]: expected 2.0, got 3.0"),
        ([{"y": {"z": 1}}], [{"y": {"z": 2}}], Tolerance(), "[0].y.z: expected 1, got 2"),
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, Tolerance(), "b: expected 2, got 3"),
        ({"y": 1}, {"z": 1}, Tolerance(), "answer: output 'y' missing"),
        ({"y": {"z": 1}}, {"y": {}}, Tolerance(), "y: output 'z' missing"),
    ],
)
def test_answers_are_compared_number_by_number_and_a_mismatch_says_where(
    expected: Any, got: Any, tolerance: Tolerance, found: str | None
) -> None:
    assert mismatch(expected, got, tolerance) == found


def test_a_value_shown_in_a_mismatch_is_cut_to_120_characters() -> None:
    fits = "a" * 118  # 120 characters with its quotes
    assert mismatch(fits, "b", Tolerance()) == f'answer: expected "{fits}", got "b"'
    cut = mismatch(fits + "a", "b", Tolerance())
    assert cut == f'answer: expected "{fits[:116]}..., got "b"'


# Synthetic warm-up.


def inputs(*tensors: Tensor, name: str = "serving_default") -> dict[str, Signature]:
    return {name: Signature({f"x{i}": t for i, t in enumerate(tensors)}, {})}


def test_synthetic_warmup_is_built_up_to_a_million_elements_and_four_mib() -> None:
    million = 1 << 20
    assert len(warmup_bodies(None, inputs(Tensor("DT_FLOAT", (million,))), 1)) == 1
    assert len(warmup_bodies(None, inputs(Tensor("DT_FLOAT", (-1, million))), 1)) == 1  # -1 counts 1
    strings = warmup_bodies(None, inputs(Tensor("DT_STRING", (million,))), 1)  # '"", ' each: 4 MiB
    assert len(json.loads(strings[0])["inputs"]["x0"]) == million
    message = "its inputs are too large for synthetic warm-up (more than 1048576 elements or 4 MiB)"
    for over in (
        inputs(Tensor("DT_FLOAT", (million + 1,))),
        inputs(*[Tensor("DT_BOOL", (million // 2 + 1,))] * 2),
    ):
        with pytest.raises(WarmupTooLargeError) as refused:
            warmup_bodies(None, over, 1)
        assert str(refused.value) == message + ": no warm-up requests sent"


def test_synthetic_warmup_takes_sizes_it_cannot_use_as_one() -> None:
    body = warmup_bodies(
        None, inputs(Tensor("DT_BOOL", (2, 0, -1)), Tensor("DT_FLOAT", ()), Tensor("DT_FLOAT", None)), 1
    )
    assert json.loads(body[0]) == {"inputs": {"x0": [[[False]], [[False]]], "x1": 0, "x2": [0]}}
    million = 1 << 20
    with pytest.raises(WarmupTooLargeError):  # counted as it would be built: 1 row, not 0
        warmup_bodies(None, inputs(Tensor("DT_FLOAT", (0, million + 1))), 1)
    # A scalar and an unknown rank count one element each, as they are built.
    for one in (Tensor("DT_FLOAT", ()), Tensor("DT_FLOAT", None)):
        assert len(warmup_bodies(None, inputs(Tensor("DT_FLOAT", (million - 1,)), one), 1)) == 1


def test_synthetic_warmup_falls_back_on_another_signature_or_sends_nothing() -> None:
    other = inputs(Tensor("DT_FLOAT", (2,)), name="classify")
    assert warmup_bodies(None, other, 2) == [b'{"inputs": {"x0": [0, 0]}}'] * 2
    assert warmup_bodies(None, {"serving_default": Signature({}, {})}, 2) == []
    assert warmup_bodies(None, {}, 2) == []


def test_no_warmup_asked_is_none_sent_whatever_the_model_size() -> None:
    huge = inputs(Tensor("DT_FLOAT", (1 << 30,)))
    assert warmup_bodies(None, huge, 0) == []
    result = check({"signature": "Ignore"}, ScriptedPods(SAME, 2.0), golden=None, serving=None)
    assert result.passed
    assert not result.status.warmed_up
    assert result.status.warmup_skipped is None


def test_one_warmup_request_warms_the_pod_up() -> None:
    pods = ScriptedPods(SAME, 2.0)
    result = check({"warmupRequests": 1}, pods)  # the golden bodies warm up
    assert result.status.warmed_up
    assert pods.sent.count((NEW_IP, "predict")) == 1


# What the pods answer.


@pytest.mark.parametrize("status", [101, 199, 201, 404, 500])
def test_metadata_is_read_only_from_a_200_and_anything_else_is_asked_again(status: int) -> None:
    def request(url: str, body: bytes | None) -> tuple[int, bytes]:
        return (status if url.startswith(f"http://{NEW_IP}:") else 200), METADATA

    result = check({}, request, golden=None)
    assert result.retry == f"metadata of version 2 on {NEW_IP}: HTTP {status}"
    assert result.failure is None


@pytest.mark.parametrize(
    ("reply", "why"),
    [(b"<html>", "Expecting value"), (b'{"metadata": {}}', "no metadata.signature_def.signature_def")],
)
def test_metadata_that_cannot_be_read_is_asked_again(reply: bytes, why: str) -> None:
    result = check({}, lambda url, body: (200, reply), golden=None)
    assert result.retry is not None
    assert result.retry.startswith(f"metadata of version 2 on {NEW_IP}: ")
    assert why in result.retry


def test_a_reply_that_does_not_arrive_whole_is_asked_again() -> None:
    def request(url: str, body: bytes | None) -> tuple[int, bytes]:
        raise bounded_http.FetchError("no whole reply within 5s")

    assert check({}, request, golden=None).retry == "no whole reply within 5s"


def test_a_server_error_is_asked_again_and_a_client_error_is_a_refusal() -> None:
    assert check(golden_spec(), answering(lambda xs: (500, b""))).retry == f"predict on {NEW_IP}: HTTP 500"
    refused = check(golden_spec(), answering(lambda xs: (499, b'{"error": "no"}')))
    assert refused.failure is not None
    assert refused.status.golden.first_mismatch == "request 1 (line 1): the model refused it: HTTP 499: no"


def test_a_predict_reply_that_is_not_json_is_asked_again() -> None:
    result = check(golden_spec(), answering(lambda xs: (200, b"<html>")))
    assert result.retry is not None
    assert result.retry.startswith(f"predict on {NEW_IP}: the reply is not JSON: ")


@pytest.mark.parametrize(
    ("status", "reply", "shown"),
    [
        (400, b'{"error": "input must be below 5"}', "HTTP 400: input must be below 5"),
        (400, b'"input must be below 5"', "HTTP 400: input must be below 5"),
        (201, b'{"predictions": [2.5]}', "HTTP 201: None"),
        (199, b'{"predictions": [2.5]}', "HTTP 199: None"),
    ],
)
def test_a_golden_answer_counts_only_from_a_200(status: int, reply: bytes, shown: str) -> None:
    result = check(golden_spec(), answering(lambda xs: (status, reply)))
    assert result.failure is not None
    assert result.status.golden.first_mismatch == f"request 1 (line 1): the model refused it: {shown}"


@pytest.mark.parametrize("status", [199, 201, 404])
def test_a_serving_version_that_refuses_a_golden_request_is_asked_again(status: int) -> None:
    def request(url: str, body: bytes | None) -> tuple[int, bytes]:
        if body is not None and url.startswith(f"http://{STABLE_IP}:"):
            return status, b'{"predictions": [2.5]}'
        return answering(echo)(url, body)

    result = check(golden_spec(compareTo="Stable"), request)
    assert result.retry == f"the serving version refused golden line 1: HTTP {status}"
    assert result.failure is None


def test_a_new_reply_without_an_answer_is_a_wrong_answer() -> None:
    result = check(golden_spec(), answering(lambda xs: (200, b'{"result": 1}')))
    assert result.failure is not None
    assert result.status.golden.first_mismatch == (
        "request 1 (line 1): the reply has neither 'predictions' nor 'outputs'"
    )


# Which comparisons run.


def test_a_version_older_than_the_serving_one_is_compared_with_it() -> None:
    pods = ScriptedPods(metadata({"inputs": "DT_FLOAT"}, {"y": "DT_FLOAT"}), 2.0)
    result = check({}, pods, golden=None, serving=ServingRef(3, STABLE_IP))  # a downgrade from 3 to 2
    assert result.failure == ("SignatureChanged", "version 2: input 'x' removed; input 'inputs' added")


def test_a_pod_of_the_serving_version_itself_is_not_compared_with_it() -> None:
    pods = ScriptedPods(SAME, 2.0)
    result = check(golden_spec(compareTo="Stable"), pods, serving=ServingRef(2, STABLE_IP))
    assert result.passed
    assert result.status.signature.result is SignatureResult.SKIPPED
    assert result.status.golden.compared_with is None
    assert all(ip == NEW_IP for ip, _ in pods.sent)


def test_stable_golden_requests_wait_for_a_serving_pod_even_with_the_signature_ignored() -> None:
    pods = ScriptedPods(SAME, 2.0)
    result = check(
        {"signature": "Ignore", **golden_spec(compareTo="Stable")}, pods, serving=ServingRef(1, None)
    )
    assert result.waiting == "waiting for a serving pod of version 1 to compare with"
    assert pods.sent == []


def test_an_ignored_signature_is_not_read_from_the_serving_pod() -> None:
    pods = ScriptedPods(metadata({"z": "DT_INT64"}, {}), 2.0)
    result = check({"signature": "Ignore"}, pods, golden=None)
    assert result.passed
    assert result.status.signature.result is SignatureResult.SKIPPED
    assert pods.sent == [(NEW_IP, "metadata")]


def test_expected_answers_are_not_compared_with_the_serving_version() -> None:
    pods = ScriptedPods(SAME, 2.0)
    result = check(golden_spec(), pods)
    assert result.passed
    assert result.status.golden.compared_with is None
    assert (STABLE_IP, "predict") not in pods.sent


def test_a_line_without_expected_only_has_to_be_answered() -> None:
    result = check(golden_spec(), ScriptedPods(SAME, 40.0), golden='{"instances": [1.0]}')
    assert result.passed
    assert result.status.golden.passed == 1


def test_a_first_version_compared_to_stable_only_has_to_answer() -> None:
    result = check(golden_spec(compareTo="Stable"), ScriptedPods(SAME, 40.0), serving=None)
    assert result.passed
    assert result.status.golden.passed == 2


def test_golden_requests_are_sent_only_when_configured() -> None:
    pods = ScriptedPods(SAME, 40.0)  # wrong answers to the file's expectations
    result = check({"warmupRequests": 1}, pods)  # the file given, only to warm up
    assert result.passed
    assert result.status.golden is None
    assert pods.sent.count((NEW_IP, "predict")) == 1


def test_an_unusable_golden_file_blocks_after_the_signature_check() -> None:
    pods = ScriptedPods(SAME, 2.0)
    runner = PreTrafficRunner(request=pods)
    unusable = GoldenFileError("ConfigMap g key k line 3 is not JSON")
    result = runner.check(
        PreTraffic.model_validate(golden_spec()), "mnist", 2, NEW_IP, ServingRef(1, STABLE_IP), unusable
    )
    assert result.blocked == "ConfigMap g key k line 3 is not JSON"
    assert result.status.signature.result is SignatureResult.COMPATIBLE


# Agreement and its messages.

THREE = '{"instances": [1.0]}\n{"instances": [2.0]}\n{"instances": [3.0]}\n'


def agreeing_on_the_first_of_three(min_agreement: float, **golden: Any) -> PodCheck:
    stable = {"predictions": [1.0]}  # the new pod echoes: it agrees on line 1 only
    spec = golden_spec(compareTo="Stable", minAgreement=min_agreement, **golden)
    return check(spec, answering(echo, stable), golden=THREE)


def test_agreement_exactly_at_min_agreement_passes() -> None:
    result = agreeing_on_the_first_of_three(1 / 3)
    assert result.passed
    assert (result.status.golden.passed, result.status.golden.requests) == (1, 3)
    assert result.status.golden.agreement == 0.3333  # to four decimals
    assert result.status.golden.compared_with == 1
    # A minAgreement over the agreement by rounding only (1e-12) is met too.
    assert agreeing_on_the_first_of_three(1 / 3 + 1e-12).passed


def test_agreement_under_min_agreement_fails_naming_the_first_disagreement() -> None:
    result = agreeing_on_the_first_of_three(0.34)
    assert result.failure == (
        "GoldenRequestsFailed",
        "version 2: agreement 0.33 with version 1 is under 0.34; "
        "request 2 (line 2): [0]: expected 1.0, got 2.0",
    )
    assert result.status.golden.first_mismatch == "request 2 (line 2): [0]: expected 1.0, got 2.0"


def test_agreement_uses_the_tolerance() -> None:
    result = agreeing_on_the_first_of_three(1.0, tolerance={"absolute": 2.0})
    assert result.passed
    assert result.status.golden.agreement == 1.0


def test_expected_answers_all_right_pass_and_one_wrong_fails_saying_how_many() -> None:
    assert check(golden_spec(), ScriptedPods(SAME, 2.0)).passed
    golden = '{"instances": [1.0], "expected": [2.5]}\n{"instances": [6.0], "expected": [9.0]}\n'
    result = check(golden_spec(), ScriptedPods(SAME, 2.0), golden=golden)
    assert result.failure == (
        "GoldenRequestsFailed",
        "version 2: 1 of 2 golden answers wrong; request 2 (line 2): [0]: expected 9.0, got 5.0",
    )
    assert (result.status.golden.passed, result.status.golden.agreement) == (1, 0.5)


def test_messages_are_cut_to_300_characters() -> None:
    long = "x" * 400

    def cut_off(url: str, body: bytes | None) -> tuple[int, bytes]:
        raise bounded_http.FetchError(long)

    assert check({}, cut_off, golden=None).retry == long[:300]
    refused = check(golden_spec(), answering(lambda xs: (400, json.dumps({"error": long}).encode())))
    assert (
        refused.status.golden.first_mismatch
        == f"request 1 (line 1): the model refused it: HTTP 400: {long[:160]}"
    )
    # Two values of 120 characters each: the mismatch fits, the failure naming it is cut.
    line = json.dumps({"instances": [1.0] * 100, "expected": [1.5] * 99})
    wrong = check(golden_spec(), answering(echo), golden=line)
    assert wrong.failure is not None
    first = wrong.status.golden.first_mismatch
    assert first.startswith("request 1 (line 1): answer: expected [1.5, ")
    assert wrong.failure[1] == f"version 2: 1 of 1 golden answers wrong; {first}"[:300]
    assert len(wrong.failure[1]) == 300


# The budget and the bounds of each request.


def test_a_check_at_its_deadline_is_out_of_budget() -> None:
    at_deadline = check({}, ScriptedPods(SAME, 2.0), golden=None, budget_seconds=0.0, clock=lambda: 50.0)
    assert at_deadline.blocked == "version 2: the checks did not finish within their 0s budget"
    within = check({}, ScriptedPods(SAME, 2.0), golden=None, budget_seconds=1.0, clock=lambda: 50.0)
    assert within.passed


def test_each_pod_gets_the_whole_budget_from_its_own_start() -> None:
    now = [1000.0]
    pods = ScriptedPods(SAME, 2.0)

    def slow(url: str, body: bytes | None) -> tuple[int, bytes]:
        now[0] += 10.0
        return pods(url, body)

    runner = PreTrafficRunner(request=slow, budget_seconds=35.0, clock=lambda: now[0])
    spec = PreTraffic.model_validate({"warmupRequests": 1})
    warmup = parse_golden(GOLDEN, "g")
    for _ in range(3):  # each 30 s: more than one budget together, within one each
        result = runner.check(spec, "mnist", 2, NEW_IP, ServingRef(1, STABLE_IP), warmup)
        assert result.passed, result.blocked


def test_the_default_budget_is_two_minutes() -> None:
    ticks = iter([0.0, 119.0, 120.0])
    result = check({}, ScriptedPods(SAME, 2.0), golden=None, clock=lambda: next(ticks))
    assert result.blocked == "version 2: the checks did not finish within their 120s budget"


def test_each_request_to_a_pod_waits_five_seconds_for_at_most_four_mib(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bounds: list[tuple[str, float, int]] = []

    def get(url: str, timeout: float, max_bytes: int) -> tuple[int, bytes]:
        bounds.append(("GET", timeout, max_bytes))
        return 200, METADATA

    def post_json(url: str, body: bytes, timeout: float, max_bytes: int) -> tuple[int, bytes]:
        bounds.append(("POST", timeout, max_bytes))
        return 200, b'{"predictions": [2.5]}'

    monkeypatch.setattr(bounded_http, "get", get)
    monkeypatch.setattr(bounded_http, "post_json", post_json)
    result = PreTrafficRunner().check(
        PreTraffic.model_validate({"warmupRequests": 1}), "mnist", 2, NEW_IP, ServingRef(1, STABLE_IP), None
    )
    assert result.passed
    assert bounds == [("GET", 5.0, 4 << 20)] * 2 + [("POST", 5.0, 4 << 20)]
