"""The docs site's generated reference pages are what the code generates now, and cover it all."""

from __future__ import annotations

import dataclasses

from hack import docs_reference
from modeldeploy.cli.main import cli
from modeldeploy.control import operator_metrics
from modeldeploy.control.settings import Settings


def test_committed_reference_pages_match_the_code() -> None:
    stale = [str(path.relative_to(docs_reference.REPO)) for path in docs_reference.stale_pages()]
    assert not stale, f"{stale} drifted from the code: run `make docs-reference`"


def test_every_page_says_it_is_generated_and_by_which_command() -> None:
    for text in docs_reference.render_pages().values():
        first_line = text.splitlines()[0]
        assert "GENERATED" in first_line
        assert "make docs-reference" in first_line


def test_every_cli_command_and_option_is_listed() -> None:
    page = docs_reference.cli_page()
    for name, command in cli.commands.items():
        assert f"## `{name}`" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                assert f"`{opt}`" in page or param.human_readable_name in page


def test_every_metric_is_listed_with_its_exposed_name() -> None:
    page = docs_reference.metrics_page()
    for name in ("modeldeploy_reconcile_total", "modeldeploy_phase", "modeldeploy_canary_weight"):
        assert f"`{name}`" in page
    assert f"`{operator_metrics.QUEUE_DEPTH._name}`" in page


def test_every_setting_is_listed_with_its_variable() -> None:
    page = docs_reference.settings_page()
    for field in dataclasses.fields(Settings):
        assert f"`{field.name}`" in page
    assert "| `MODELDEPLOY_WORKERS` | `workers` | `int` | `32` |" in page
    assert "`MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS` | `renew_deadline_seconds`" in page


def test_every_crd_field_is_listed() -> None:
    page = docs_reference.crd_page()
    for path in (
        "spec.model.storageUri",
        "spec.rollout.analysis.successRate.min",
        "status.canary.trafficShare",
    ):
        assert f"`{path}`" in page
