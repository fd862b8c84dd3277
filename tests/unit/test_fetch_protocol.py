"""The fetcher's protocol: both ends speak ``api.fetch_protocol``, and what one end writes the
other reads back: the builder's arguments and environment, the fetcher's termination message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from modeldeploy.api import fetch_protocol as protocol
from modeldeploy.api.fetch_protocol import FetchRequest, FetchSuccess
from modeldeploy.api.redaction import redact
from modeldeploy.api.spec import ModelDeployment, image_reference_problem
from modeldeploy.children.deployment import build_deployment
from modeldeploy.control.settings import Settings
from modeldeploy.fetcher.__main__ import main as fetch_main
from modeldeploy.fetcher.errors import FetchError
from modeldeploy.fetcher.limits import Limits
from modeldeploy.rollout.child_state import fetch_failure_of_pod, fetched_digest_of_pod

from .objects import SAMPLE_SPEC, model_deployment

DIGEST = "sha256:" + "0123456789abcdef" * 4


def fetcher_container(md: ModelDeployment) -> dict[str, object]:
    pod = build_deployment(md, 3, 2, "stable")["spec"]["template"]["spec"]
    (fetcher,) = pod["initContainers"]
    return dict(fetcher)


def terminated_pod(exit_code: int, message: str) -> dict[str, object]:
    terminated = {"exitCode": exit_code, "message": message}
    return {
        "metadata": {"name": "mnist-v3-abc"},
        "status": {"initContainerStatuses": [{"name": "fetch-model", "state": {"terminated": terminated}}]},
    }


def test_the_builders_args_parse_back_with_the_fetchers_parser(md: ModelDeployment) -> None:
    args = fetcher_container(md)["args"]
    assert isinstance(args, list)
    assert protocol.parse_args(args) == FetchRequest("s3://models/mnist", 3, "/models/mnist")


def test_the_builders_environment_is_what_the_fetchers_limits_read() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["modelVolumeSizeLimit"] = "512Mi"
    env = fetcher_container(model_deployment(spec))["env"]
    assert isinstance(env, list)
    limits = Limits.from_env({entry["name"]: entry["value"] for entry in env})
    assert limits.max_bytes == 512 << 20
    assert (limits.max_entries, limits.max_ratio) == (Limits().max_entries, Limits().max_ratio)


def test_the_builder_lets_the_kubelet_fall_back_to_the_fetchers_log(md: ModelDeployment) -> None:
    policy = fetcher_container(md)["terminationMessagePolicy"]
    assert policy == protocol.TERMINATION_MESSAGE_POLICY == "FallbackToLogsOnError"


@pytest.mark.parametrize(
    "request_",
    [
        FetchRequest("s3://models/mnist", 3, "/models/mnist"),
        FetchRequest("https://host/m/model.tar.gz?X-Amz-Signature=s", 12, "/models/m"),
        FetchRequest("file:///srv/models/a b", 1, "/models/a"),
    ],
)
def test_arguments_round_trip(request_: FetchRequest) -> None:
    assert protocol.parse_args(protocol.build_args(request_)) == request_


def test_arguments_that_name_no_fetch_are_refused() -> None:
    with pytest.raises(protocol.UsageError, match="usage: modeldeploy-fetch"):
        protocol.parse_args(["s3://m/x", "3"])
    with pytest.raises(protocol.ArgumentError, match="whole number, got 'three'") as excinfo:
        protocol.parse_args(["s3://m/x", "three", "/models/x"])
    assert not isinstance(excinfo.value, protocol.UsageError)


@pytest.mark.parametrize(
    "success",
    [
        FetchSuccess("s3://models/mnist", 3, DIGEST, 4, 100),
        FetchSuccess("gs://b/m", 8, DIGEST, 1, 0, folder="00000008"),
        FetchSuccess("https://host/m.tar.gz", 2, DIGEST, 7, 1 << 40, folder="2"),
    ],
)
def test_success_message_round_trip(success: FetchSuccess) -> None:
    line = protocol.success_message(success)
    assert "\n" not in line
    expected = (
        success
        if success.folder != str(success.version)
        else FetchSuccess(success.storage_uri, success.version, success.digest, success.files, success.size)
    )
    assert protocol.parse_success(line) == expected
    report = protocol.read_termination(protocol.EXIT_FETCHED, line + "\n")
    assert (report.succeeded, report.digest, report.line) == (True, DIGEST, line)


def test_the_digest_survives_the_redaction_of_a_signed_uri() -> None:
    """The fetcher redacts every line it reports, which may reshape the line around a query
    string: the reader still finds the digest."""
    signed = FetchSuccess("https://host/m.tar.gz?X-Amz-Signature=s3cr3t", 2, DIGEST, 7, 100)
    line = redact(protocol.success_message(signed))
    assert "s3cr3t" not in line
    assert protocol.read_termination(protocol.EXIT_FETCHED, line).digest == DIGEST


def test_failure_message_round_trip() -> None:
    line = protocol.failure_message("version 3 not found:\n  s3://m/x/3/ does not exist")
    assert line == "fetch failed: version 3 not found: s3://m/x/3/ does not exist"
    report = protocol.read_termination(protocol.EXIT_FAILED, line + "\n")
    assert (report.succeeded, report.digest) == (False, None)
    assert report.line == line
    assert report.reason == "version 3 not found: s3://m/x/3/ does not exist"
    assert protocol.parse_success(line) is None


def test_a_failure_never_carries_a_digest_and_an_empty_message_names_the_exit_code() -> None:
    assert protocol.read_termination(1, DIGEST).digest is None
    assert protocol.read_termination(137, "").line == "exit code 137"


def test_the_fetchers_termination_message_reads_back_in_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ends, run: the fetcher's command writes the log, the operator's reader parses it."""
    log = tmp_path / "termination-log"
    monkeypatch.setenv(protocol.TERMINATION_LOG_ENV, str(log))
    store = tmp_path / "store"
    store.mkdir()
    assert fetch_main([f"file://{store}", "4", str(tmp_path / "models")]) == protocol.EXIT_FAILED
    failure = fetch_failure_of_pod(terminated_pod(protocol.EXIT_FAILED, log.read_text()))
    assert failure is not None
    assert (
        failure.message
        == f"fetch failed: version 4 not found: file://{store}/4/ does not exist (no version folders there)"
    )
    assert fetch_main(["only-one-argument"]) == protocol.EXIT_USAGE
    assert log.read_text() == protocol.USAGE + "\n"


def test_the_fetchers_success_line_reads_back_in_the_operator() -> None:
    from modeldeploy.fetcher.fetch import FetchResult

    line = FetchResult(Path("/models/m/3"), DIGEST, 4, 100, folder="0003").summary("s3://m/x", 3)
    assert line == f"fetched version 3 of s3://m/x from folder 0003: {DIGEST} (4 files, 100 bytes)"
    assert fetched_digest_of_pod(terminated_pod(protocol.EXIT_FETCHED, line + "\n")) == DIGEST
    assert fetch_failure_of_pod(terminated_pod(protocol.EXIT_FETCHED, line)) is None


def test_fetch_error_reasons_are_already_one_line() -> None:
    reason = str(FetchError("access denied\nto s3://b/m/3/"))
    assert protocol.failure_message(reason) == f"fetch failed: {reason}"


def test_the_digest_the_spec_names_reaches_the_fetcher_only_when_given() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    env = fetcher_container(model_deployment(spec))["env"]
    assert isinstance(env, list)
    assert protocol.EXPECTED_DIGEST_ENV not in {entry["name"] for entry in env}  # the template keeps its hash
    spec["model"]["digest"] = DIGEST
    env = fetcher_container(model_deployment(spec))["env"]
    assert isinstance(env, list)
    assert {entry["name"]: entry["value"] for entry in env}[protocol.EXPECTED_DIGEST_ENV] == DIGEST


def test_the_spec_takes_a_digest_in_the_format_the_fetcher_reports() -> None:
    line = protocol.success_message(FetchSuccess("s3://m/x", 3, DIGEST, 1, 1))
    reported = protocol.read_termination(protocol.EXIT_FETCHED, line).digest
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["model"]["digest"] = reported
    assert model_deployment(spec).spec.model.digest == DIGEST
    for wrong in ("sha256:" + "A" * 64, DIGEST[:-1], "md5:" + "0" * 32):
        spec["model"]["digest"] = wrong
        with pytest.raises(ValueError, match="digest"):
            model_deployment(spec)


def test_the_deadline_and_digest_read_back_in_the_fetchers_limits() -> None:
    env = protocol.limits_env(1 << 20, expected_digest=DIGEST, deadline_seconds=90)
    assert env == {
        protocol.MAX_BYTES_ENV: str(1 << 20),
        protocol.EXPECTED_DIGEST_ENV: DIGEST,
        protocol.DEADLINE_ENV: "90",
    }
    assert Limits.from_env(env).deadline_seconds == 90
    assert Limits.from_env({}).deadline_seconds == protocol.DEFAULT_DEADLINE_SECONDS


@pytest.mark.parametrize(
    "image",
    [
        "tensorflow/serving:2.18.0",
        "tensorflow/serving:2.18.0@sha256:" + "0a" * 32,
        "tensorflow/serving@sha256:" + "0a" * 32,
        "registry.example.com:5000/ml/serving-gpu:2.18.0",
        "localhost/fetcher",
    ],
)
def test_images_pinned_by_tag_or_digest_are_accepted(image: str) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["image"] = image
    assert model_deployment(spec).spec.runtime.image == image
    assert image_reference_problem(image) is None
    assert Settings.from_env({"MODELDEPLOY_FETCHER_IMAGE": image}).fetcher_image == image


@pytest.mark.parametrize(
    "image",
    [" padded ", "tensorflow/serving:2.18.0@sha256:abc", "a:b:c", "tensorflow/serving@", "https://hub/x"],
)
def test_strings_that_are_no_image_reference_are_refused(image: str) -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["runtime"]["image"] = image
    with pytest.raises(ValueError, match="image"):
        model_deployment(spec)
    with pytest.raises(ValueError, match=r"MODELDEPLOY_FETCHER_IMAGE=.* is not an image reference"):
        Settings.from_env({"MODELDEPLOY_FETCHER_IMAGE": image})
