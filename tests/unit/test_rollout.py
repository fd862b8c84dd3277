"""The Immediate rollout plan: the old version serves until the new one is complete."""

from __future__ import annotations

from modeldeploy.api.spec import ModelDeployment
from modeldeploy.api.status import CanaryStatus, ModelDeploymentStatus, VersionStatus
from modeldeploy.api.times import parse_time
from modeldeploy.rollout.report import derive_status
from modeldeploy.rollout.types import PassFacts, VersionPlan

from .objects import T0, make_plan, model_deployment, observed_deployment

SERVING_2 = ModelDeploymentStatus(stable=VersionStatus(version=2, replicas=2, ready_replicas=2))


def test_first_rollout_applies_only_the_target() -> None:
    plan = make_plan(model_deployment(), ModelDeploymentStatus(), {}, T0)
    assert plan.apply == [VersionPlan(3, 2, "stable")]
    assert plan.delete == []
    assert plan.serving_version is None


def test_new_version_rolls_beside_the_serving_one() -> None:
    plan = make_plan(
        model_deployment(),
        SERVING_2,
        now=T0,
        observed={2: observed_deployment(2), 3: observed_deployment(3, ready=0)},
    )
    assert plan.serving_version == 2
    assert [v.version for v in plan.apply] == [3]
    assert plan.delete == []  # version 2 keeps serving
    assert plan.rolling


def test_complete_new_version_retires_the_old() -> None:
    plan = make_plan(
        model_deployment(), SERVING_2, now=T0, observed={2: observed_deployment(2), 3: observed_deployment(3)}
    )
    assert plan.serving_version == 3
    assert plan.delete == [2]
    assert not plan.rolling


def test_stray_versions_are_removed_while_rolling() -> None:
    plan = make_plan(
        model_deployment(),
        SERVING_2,
        now=T0,
        observed={1: observed_deployment(1), 2: observed_deployment(2), 3: observed_deployment(3, ready=0)},
    )
    assert plan.delete == [1]


def test_lost_status_is_recovered_from_observation() -> None:
    plan = make_plan(
        model_deployment(),
        ModelDeploymentStatus(),
        now=T0,
        observed={2: observed_deployment(2), 3: observed_deployment(3, ready=0)},
    )
    assert plan.serving_version == 2
    assert plan.delete == []


def test_with_an_hpa_a_new_version_is_handed_the_serving_size() -> None:
    import copy

    from .objects import SAMPLE_SPEC

    spec = copy.deepcopy(SAMPLE_SPEC)
    del spec["replicas"]
    spec["autoscaling"] = {"minReplicas": 2, "maxReplicas": 9}
    md = model_deployment(spec)
    scaled_up = observed_deployment(2, replicas=5, ready=5)  # the HPA grew version 2 to 5
    plan = make_plan(md, SERVING_2, now=T0, observed={2: scaled_up})
    # The count is the HPA's (replicas None) but version 3 starts at version 2's 5, not at 1.
    assert plan.apply == [VersionPlan(3, None, "stable", initial_replicas=5)]


def _canary_md() -> ModelDeployment:
    import copy

    from .objects import SAMPLE_SPEC

    spec = copy.deepcopy(SAMPLE_SPEC)
    spec["rollout"] = {"strategy": "Canary", "steps": [{"weight": 50, "pause": "5m"}]}
    return model_deployment(spec)


def test_a_stable_deployment_deleted_mid_canary_is_made_again_and_nothing_is_promoted() -> None:
    # Found by the outage test: the stable Deployment deleted during a partition made the
    # next pass take the canary for the only version, and promote it with no analysis.
    status = ModelDeploymentStatus(
        stable=VersionStatus(version=2, replicas=2, ready_replicas=2),
        canary=CanaryStatus(version=3, weight=50, step=0, started_at=T0, step_started_at=T0),
    )
    plan = make_plan(_canary_md(), status, now=T0, observed={3: observed_deployment(3, replicas=2)})
    assert plan.serving_version == 2
    assert VersionPlan(2, 2, "stable") in plan.apply
    assert 3 not in plan.delete


def test_status_keeps_the_stable_version_while_its_deployment_is_gone() -> None:
    # Found by the outage test (2 of 6 runs): the pass after the deletion wrote no stable
    # version, so the pass after that no longer knew one, took the canary for the only
    # version and promoted it with no analysis and no history entry.
    md = _canary_md()
    status = ModelDeploymentStatus(
        observed_generation=1,
        stable=VersionStatus(version=2, replicas=2, ready_replicas=2, digest="sha256:2"),
        canary=CanaryStatus(version=3, weight=50, step=0, started_at=T0, step_started_at=T0),
    )
    observed = {3: observed_deployment(3, replicas=1)}
    for _ in range(3):  # pass after pass while the Deployment is being made again
        plan = make_plan(md, status, now=T0, observed=observed)
        status = derive_status(md, plan, status, PassFacts(observed, parse_time(T0)))
        assert status.stable is not None
        assert status.stable.version == 2
        assert status.stable.ready_replicas == 0
        assert status.stable.digest == "sha256:2"
        assert status.canary is not None
        assert status.canary.version == 3
        assert status.history == []


def test_a_stable_deployment_deleted_after_a_rollback_does_not_promote_the_failed_version() -> None:
    status = ModelDeploymentStatus(
        stable=VersionStatus(version=2, replicas=2, ready_replicas=2), failed_versions=[3]
    )
    plan = make_plan(_canary_md(), status, now=T0, observed={3: observed_deployment(3, replicas=1)})
    assert plan.serving_version == 2
    assert [v.version for v in plan.apply] == [2]
