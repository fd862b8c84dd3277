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
    assert settings.shard_count == 1  # one Lease: today's single leader
    assert Settings.from_env({"MODELDEPLOY_SHARDS": "32"}).shard_count == 32
    assert settings.first_pass_workers == 16 < settings.workers  # some always free for rollouts under way
    assert Settings.from_env({"MODELDEPLOY_FIRST_PASS_WORKERS": "4"}).first_pass_workers == 4


def test_a_service_link_in_a_number_setting_is_named_in_the_error() -> None:
    """What Kubernetes puts in a pod for a Service named modeldeploy-metrics."""
    with pytest.raises(
        ValueError, match=r"MODELDEPLOY_METRICS_PORT='tcp://10.96.0.7:8081' is not an integer"
    ):
        Settings.from_env({"MODELDEPLOY_METRICS_PORT": "tcp://10.96.0.7:8081"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # A renew deadline past the lease: a paused leader acts after a standby took over.
        (
            {"MODELDEPLOY_LEASE_DURATION_SECONDS": "5", "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "7"},
            r"MODELDEPLOY_LEASE_DURATION_SECONDS=5 must be above MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS=7",
        ),
        (
            {"MODELDEPLOY_LEASE_DURATION_SECONDS": "7", "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "7"},
            r"MODELDEPLOY_LEASE_DURATION_SECONDS=7 must be above",
        ),
        (
            {"MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "6"},
            r"MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS=7 must be above 1.2 x "
            r"MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS=6",
        ),
        (
            {"MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "0"},
            r"MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS=0 must be",
        ),
        (
            {"MODELDEPLOY_PROMETHEUS_ALLOWED": "http://prometheus:9090, ftp://x"},
            r"MODELDEPLOY_PROMETHEUS_ALLOWED: 'ftp://x' is not",
        ),
        ({"MODELDEPLOY_SHARDS": "0"}, r"MODELDEPLOY_SHARDS=0 must be at least 1"),
        ({"MODELDEPLOY_WORKERS": "0"}, r"MODELDEPLOY_WORKERS=0 must be at least 1"),
        ({"MODELDEPLOY_FIRST_PASS_WORKERS": "0"}, r"MODELDEPLOY_FIRST_PASS_WORKERS=0 must be at least 1"),
        ({"MODELDEPLOY_SHARDS": "-3"}, r"MODELDEPLOY_SHARDS=-3 must be at least 1"),
        (
            {"MODELDEPLOY_PROMETHEUS_ALLOWED": "http://user@prometheus:9090"},
            r"MODELDEPLOY_PROMETHEUS_ALLOWED: 'http://user@prometheus:9090' is not",
        ),
        (
            {"MODELDEPLOY_WEBHOOK_ALLOWED": "https://hooks.example/ci, 10.0.0.1"},
            r"MODELDEPLOY_WEBHOOK_ALLOWED: '10.0.0.1' is not",
        ),
    ],
)
def test_unsafe_settings_stop_the_start_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Settings.from_env(env).validate()


def test_the_defaults_and_client_go_s_own_timings_are_valid() -> None:
    assert Settings.from_env({}).validate().prometheus_allowed == ()
    assert Settings.from_env({}).validate().webhook_allowed == ()
    client_go = {
        "MODELDEPLOY_LEASE_DURATION_SECONDS": "15",
        "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS": "10",
        "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS": "2",
        "MODELDEPLOY_PROMETHEUS_ALLOWED": "http://prometheus.monitoring:9090,https://metrics.example/prom/",
        "MODELDEPLOY_WEBHOOK_ALLOWED": "https://hooks.example/ci/",
    }
    settings = Settings.from_env(client_go).validate()
    assert settings.lease_timings == LeaseTimings(15, 10, 2)
    assert settings.prometheus_allowed == (
        "http://prometheus.monitoring:9090",
        "https://metrics.example/prom/",
    )
    assert settings.webhook_allowed == ("https://hooks.example/ci/",)
