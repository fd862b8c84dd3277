"""Status derived from Deployment states, and the events its transitions emit."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from modeldeploy.api.status import ModelDeploymentStatus, Phase, VersionStatus
from modeldeploy.api.times import parse_time
from modeldeploy.rollout.child_state import FetchFailure, ObservedDeployment
from modeldeploy.rollout.report import derive_status, traffic_share, transition_events
from modeldeploy.rollout.types import PassFacts

from .objects import SAMPLE_SPEC, T0, T1, make_plan, model_deployment, observed_deployment


def derive(
    observed: dict[int, ObservedDeployment],
    previous: ModelDeploymentStatus | None = None,
    spec: dict[str, Any] | None = None,
    now: str = T0,
    **kwargs: Any,
) -> ModelDeploymentStatus:
    md = model_deployment(spec)
    previous = previous or ModelDeploymentStatus()
    planned = make_plan(md, previous, observed, now)
    return derive_status(md, planned, previous, PassFacts(observed, parse_time(now), **kwargs))


def conditions(status: ModelDeploymentStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_no_children_yet_is_pending() -> None:
    status = derive({})
    assert status.phase is Phase.PENDING
    assert conditions(status)["Ready"] == ("False", "RollingOut")
    assert conditions(status)["Reconciling"] == ("True", "RollingOut")  # kstatus: InProgress
    assert conditions(status)["Stalled"] == ("False", "RollingOut")
    assert conditions(status)["Available"] == ("False", "NoReadyReplicas")
    assert status.stable is None
    assert status.observed_generation == 1


def test_progressing_while_pods_come_up() -> None:
    status = derive({3: observed_deployment(3, ready=1)})
    assert status.phase is Phase.PROGRESSING  # one pod answers already
    assert conditions(status)["Progressing"] == ("True", "RollingOut")
    assert conditions(status)["Ready"][0] == "False"
    assert status.ready == "1/2"


def test_available_and_complete_is_ready() -> None:
    status = derive({3: observed_deployment(3)})
    assert status.phase is Phase.READY
    assert conditions(status) == {
        "Ready": ("True", "RolloutComplete"),
        "Available": ("True", "MinimumReplicasReady"),
        "Progressing": ("False", "RolloutComplete"),
        "Degraded": ("False", "AsExpected"),
        "ModelLoaded": ("True", "VersionAvailable"),
        "CanaryHealthy": ("True", "NoCanary"),
        "Reconciling": ("False", "RolloutComplete"),
        "Stalled": ("False", "RolloutComplete"),
    }
    assert status.stable == VersionStatus(version=3, replicas=2, ready_replicas=2)
    assert status.endpoints is not None
    assert status.endpoints.grpc == "mnist.ml.svc:8500"


def test_stale_observed_generation_is_not_ready() -> None:
    status = derive({3: observed_deployment(3, generation=2, observed=1)})
    assert status.phase is not Phase.READY


def test_failed_rollout_while_old_version_serves_is_degraded() -> None:
    previous = ModelDeploymentStatus(stable=VersionStatus(version=2, replicas=2, ready_replicas=2))
    observed = {
        2: observed_deployment(2),
        3: observed_deployment(3, ready=0, progressing=("False", "ProgressDeadlineExceeded")),
    }
    status = derive(observed, previous)
    assert status.phase is Phase.DEGRADED
    assert status.stable is not None
    assert status.stable.version == 2
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.reason == "ProgressDeadlineExceeded"
    assert "version 3 did not become ready within 300s" in degraded.message


def test_failed_first_rollout_is_failed() -> None:
    status = derive(
        {
            3: observed_deployment(
                3, ready=0, available="False", progressing=("False", "ProgressDeadlineExceeded")
            )
        }
    )
    assert status.phase is Phase.FAILED


def test_scaled_to_zero_is_ready_but_not_available() -> None:
    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["replicas"] = 0
    status = derive({3: observed_deployment(3, replicas=0, ready=0)}, spec=spec)
    assert status.phase is Phase.READY
    assert conditions(status)["Available"] == ("False", "ScaledToZero")
    assert status.ready == "0/0"


def test_fetch_failure_is_reported_as_model_not_loaded() -> None:
    failure = FetchFailure(pod="mnist-v3-x", message="version 3 not found under s3://models/mnist/")
    status = derive({3: observed_deployment(3, ready=0, available="False")}, fetch_failure=failure)
    assert conditions(status)["ModelLoaded"] == ("False", "FetchFailed")
    assert conditions(status)["Degraded"] == ("True", "ModelFetchFailed")
    message = next(c.message for c in status.conditions if c.type == "ModelLoaded")
    assert "version 3 not found under s3://models/mnist/" in message
    assert status.phase is Phase.FAILED


def test_unchanged_observation_gives_an_equal_status() -> None:
    first = derive({3: observed_deployment(3)}, now=T0)
    second = derive({3: observed_deployment(3)}, previous=first, now=T1)
    assert second == first  # nothing to write
    assert all(c.last_transition_time == T0 for c in second.conditions)


def test_transition_times_move_only_with_the_status() -> None:
    first = derive({3: observed_deployment(3, ready=1)}, now=T0)
    second = derive({3: observed_deployment(3)}, previous=first, now=T1)
    times = {c.type: c.last_transition_time for c in second.conditions}
    assert times["Ready"] == T1
    assert times["Degraded"] == T0


def test_events_on_ready_degraded_and_version_change() -> None:
    pending = derive({})
    ready = derive({3: observed_deployment(3)}, previous=pending)
    assert [(e.type, e.reason) for e in transition_events(pending, ready)] == [("Normal", "Ready")]
    assert transition_events(ready, ready) == []
    previous = ModelDeploymentStatus(
        phase=Phase.READY, stable=VersionStatus(version=2, replicas=2, ready_replicas=2)
    )
    rolled = derive({3: observed_deployment(3)}, previous=previous)
    assert ("Normal", "VersionRolled") in [(e.type, e.reason) for e in transition_events(previous, rolled)]
    assert rolled.history[-1].version == 3
    assert rolled.history[-1].result == "Promoted"
    broken = derive(
        {
            2: observed_deployment(2),
            3: observed_deployment(3, ready=0, progressing=("False", "ProgressDeadlineExceeded")),
        },
        previous=previous,
    )
    assert [(e.type, e.reason) for e in transition_events(previous, broken)] == [
        ("Warning", "ProgressDeadlineExceeded")
    ]


def test_invalid_spec_is_degraded_even_before_anything_serves() -> None:
    status = derive({}, spec_problem="spec.runtime.args: --port=9000 is set by the operator")
    assert status.phase is Phase.DEGRADED
    assert conditions(status)["Degraded"] == ("True", "InvalidSpec")


DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_fetched_digest_reaches_status_and_a_changed_artifact_is_visible() -> None:
    first = derive({3: observed_deployment(3)}, digests={3: DIGEST_A})
    assert first.stable is not None
    assert first.stable.digest == DIGEST_A
    # Pods that report nothing (e.g. restarted from a PVC) keep the known digest.
    assert derive({3: observed_deployment(3)}, previous=first).stable.digest == DIGEST_A  # type: ignore[union-attr]
    changed = derive({3: observed_deployment(3)}, previous=first, digests={3: DIGEST_B})
    events = transition_events(first, changed)
    assert [(e.type, e.reason) for e in events] == [("Warning", "ArtifactChanged")]
    assert DIGEST_A in events[0].message
    assert DIGEST_B in events[0].message


def test_traffic_share_is_what_the_canary_really_gets() -> None:
    """A Service splits by pods: two stable pods and one canary pod give the canary a third,
    whatever the step's weight; a route splits by its weight."""
    weight = 10
    stable, new = observed_deployment(3), observed_deployment(4, replicas=1, ready=1)
    stable = dataclasses.replace(stable, serving_replicas=2)
    assert (
        traffic_share(model_deployment(), weight, dataclasses.replace(new, serving_replicas=1), stable)
        == 0.33
    )
    assert (
        traffic_share(model_deployment(), weight, dataclasses.replace(new, serving_replicas=0), stable) == 0.0
    )
    assert traffic_share(model_deployment(), weight, None, None) == 0.0
    gateway = {
        **SAMPLE_SPEC,
        "traffic": {"router": "GatewayAPI", "gateway": {"parentRefs": [{"name": "gw"}]}},
    }
    assert traffic_share(model_deployment(gateway), weight, new, stable) == 0.1
