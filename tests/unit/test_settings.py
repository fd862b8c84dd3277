"""Settings from the environment: defaults, and a bad value named in the error."""

from __future__ import annotations

import pytest

from modeldeploy.control.settings import Settings
from modeldeploy.kube.lease import LeaseTimings


def test_defaults_and_overrides() -> None:
    settings = Settings.from_env(
        {"MODELDEPLOY_METRICS_PORT": "0", "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "0.5"}
    )
    assert settings.metrics_port == 0
    assert settings.retry_period_seconds == 0.5
    assert settings.lease_duration_seconds == LeaseTimings().lease_duration == 10


def test_a_service_link_in_a_number_setting_is_named_in_the_error() -> None:
    """What Kubernetes puts in a pod for a Service named modeldeploy-metrics."""
    with pytest.raises(
        ValueError, match=r"MODELDEPLOY_METRICS_PORT='tcp://10.96.0.7:8081' is not an integer"
    ):
        Settings.from_env({"MODELDEPLOY_METRICS_PORT": "tcp://10.96.0.7:8081"})
