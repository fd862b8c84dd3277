"""The operator's /metrics: what a status write counts, what the cache shows, how it is served."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.api.names import KIND
from modeldeploy.api.status import HistoryEntry, ModelDeploymentStatus, RolloutResult, Verdict
from modeldeploy.control import operator_metrics
from modeldeploy.control.kinds import new_cache


def counted(metric: str, **labels: str) -> float:
    value = operator_metrics.REGISTRY.get_sample_value(metric, labels)
    return value or 0.0


def test_a_status_write_counts_its_check_and_each_new_history_entry_once() -> None:
    ours = {"namespace": "unit-metrics", "name": "count"}
    before = ModelDeploymentStatus(
        history=[HistoryEntry(version=1, result=RolloutResult.PROMOTED, at="2026-01-01T00:00:00Z")]
    )
    after = before.model_copy(
        update={
            "history": [
                *before.history,
                HistoryEntry(version=2, result=RolloutResult.ROLLED_BACK, at="2026-01-01T00:01:00Z"),
            ]
        }
    )
    operator_metrics.track("unit-metrics", "count")
    assert (
        operator_metrics.REGISTRY.get_sample_value(
            "modeldeploy_rollouts_total", {**ours, "result": "RolledBack"}
        )
        == 0
    ), "a tracked resource's counters exist at 0 before their first increase"
    operator_metrics.record_status_change("unit-metrics", "count", before, after, Verdict.FAILED)
    operator_metrics.record_status_change("unit-metrics", "count", after, after, None)  # nothing new
    assert counted("modeldeploy_rollouts_total", **ours, result="RolledBack") == 1
    assert counted("modeldeploy_rollouts_total", **ours, result="Promoted") == 0  # it was there before
    assert counted("modeldeploy_analysis_checks_total", **ours, verdict="Failed") == 1
    operator_metrics.forget("unit-metrics", "count")
    assert (
        operator_metrics.REGISTRY.get_sample_value(
            "modeldeploy_rollouts_total", {**ours, "result": "RolledBack"}
        )
        is None
    )


def test_phase_weight_and_step_are_read_from_the_cache_at_scrape_time() -> None:
    cache = new_cache()
    registry = CollectorRegistry()
    registry.register(operator_metrics.ResourceCollector(cache))
    body = {
        "metadata": {"namespace": "ns", "name": "mnist", "resourceVersion": "1"},
        "status": {"phase": "Progressing", "canary": {"version": 2, "weight": 50, "step": 1}},
    }
    cache.upsert(KIND, body)
    labels = {"namespace": "ns", "name": "mnist"}
    assert registry.get_sample_value("modeldeploy_phase", {**labels, "phase": "Progressing"}) == 1
    assert registry.get_sample_value("modeldeploy_phase", {**labels, "phase": "Ready"}) == 0
    assert registry.get_sample_value("modeldeploy_canary_weight", labels) == 50
    assert registry.get_sample_value("modeldeploy_canary_step", labels) == 1
    cache.remove(KIND, "ns", "mnist")
    assert registry.get_sample_value("modeldeploy_phase", {**labels, "phase": "Progressing"}) is None


def test_metrics_are_served_on_their_path_only() -> None:
    server = operator_metrics.serve("127.0.0.1", 0, "/custom-metrics")
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/custom-metrics", timeout=5) as response:
            families = {f.name for f in text_string_to_metric_families(response.read().decode())}
        assert {"modeldeploy_build_info", "modeldeploy_reconcile", "modeldeploy_leader"} <= families
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_a_scrape_reports_the_operators_own_memory_and_python() -> None:
    server = operator_metrics.serve("127.0.0.1", 0, "/metrics")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            families = {
                family.name: family for family in text_string_to_metric_families(response.read().decode())
            }
        memory = families["process_resident_memory_bytes"].samples[0].value
        assert memory > 1_000_000, "a running Python process holds more than a megabyte"
        assert families["process_open_fds"].samples[0].value >= 3
        assert "python_info" in families
    finally:
        server.shutdown()
        server.server_close()
