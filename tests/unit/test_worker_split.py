"""How the suite is split over test workers: what must not run side by side shares a unit."""

from __future__ import annotations

import pytest

from tests.conftest import scope_of

pytestmark = pytest.mark.timeout(30)


def test_the_latency_judging_tests_share_the_real_nodes_unit_of_work() -> None:
    node = scope_of("tests/node/test_release.py::test_the_plugin_package_holds_the_plugin")
    assert node == scope_of("tests/node/test_fetcher.py::test_x") == "node"
    assert scope_of("tests/integration/test_relative.py::test_a_canary_thirty_percent_slower") == node
    assert scope_of("integration/test_relative.py::test_y") == node  # run from inside tests/


def test_other_files_are_units_of_their_own() -> None:
    assert scope_of("tests/integration/test_canary.py::test_a") == "tests/integration/test_canary.py"
    assert scope_of("tests/integration/test_canary.py::b") == scope_of("tests/integration/test_canary.py::c")
    assert scope_of("tests/unit/test_cli.py::test_c") != scope_of("tests/unit/test_crd.py::test_c")
