"""The suite's bursts of set-up work run niced, and the test process beside them does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testbed.support.priority import BACKGROUND_NICENESS, background_pool, in_background

pytestmark = pytest.mark.timeout(60)
PRINT_NICENESS = "import os; print(os.getpriority(os.PRIO_PROCESS, 0))"


def niceness_of_a_child() -> int:
    shown = subprocess.run([sys.executable, "-c", PRINT_NICENESS], capture_output=True, text=True, check=True)
    return int(shown.stdout)


def test_a_process_started_in_the_background_is_niced_and_the_caller_is_not() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert in_background(niceness_of_a_child) == min(19, before + BACKGROUND_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
    assert niceness_of_a_child() == before


def test_every_thread_of_a_background_pool_starts_niced_processes() -> None:
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with background_pool(2) as pool:
        seen = [f.result() for f in [pool.submit(niceness_of_a_child) for _ in range(4)]]
    assert seen == [min(19, before + BACKGROUND_NICENESS)] * 4
    assert os.getpriority(os.PRIO_PROCESS, 0) == before
