"""``get`` and ``status`` show each webhook gate's latest answer."""

from __future__ import annotations

import datetime

from modeldeploy.cli.views import rollout_view, status_text

from .objects import model_deployment_body
from .test_cli import render

NOW = datetime.datetime(2026, 11, 24, 12, 0, 0, tzinfo=datetime.UTC)
WEBHOOKS = [
    {
        "name": "sign-off",
        "at": "PreTraffic",
        "step": 0,
        "result": "Passed",
        "checkedAt": "2026-11-24T11:59:00Z",
    },
    {
        "name": "load-test",
        "at": "Step",
        "step": 1,
        "result": "Failed",
        "checkedAt": "2026-11-24T11:59:50Z",
        "message": "HTTP 500: p99 900ms > 250ms",
    },
]


def held() -> dict[str, object]:
    canary = {"version": 3, "weight": 10, "step": 0, "analysis": {"webhooks": WEBHOOKS}}
    return model_deployment_body(
        generation=1,
        spec={
            "model": {"version": 3},
            "rollout": {"steps": [{"weight": 10, "pause": "90s"}, {"weight": 50}]},
        },
        status={"observedGeneration": 1, "phase": "Progressing", "stable": {"version": 2}, "canary": canary},
    )


def test_get_shows_each_gates_latest_answer() -> None:
    lines = [" ".join(line.split()) for line in render(rollout_view(held(), [], NOW)).splitlines()]
    assert "Webhook sign-off Passed before any traffic at 2026-11-24T11:59:00Z" in lines
    assert (
        "Webhook load-test Failed before step 2 at 2026-11-24T11:59:50Z: HTTP 500: p99 900ms > 250ms" in lines
    )


def test_status_shows_each_gates_latest_answer() -> None:
    text = status_text(held())
    assert (
        "    webhook load-test: Failed before step 2 at 2026-11-24T11:59:50Z: HTTP 500: p99 900ms > 250ms"
        in text
    )
