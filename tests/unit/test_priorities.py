"""A person's edit or one-shot action on a ModelDeployment goes before queued timers and first
passes."""

from __future__ import annotations

from typing import Any

from modeldeploy.control.watches import user_acted
from modeldeploy.kube.workqueue import WorkQueue


def body(generation: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "mnist", "namespace": "ml", "generation": generation, "annotations": annotations}
    }


def test_edits_and_actions_are_urgent_status_echoes_and_first_passes_are_not() -> None:
    assert not user_acted(None, body(1))  # first seen: a first pass
    assert user_acted(body(1), body(2))  # spec edit
    assert user_acted(body(2), body(2, {"serving.modeldeploy.dev/abort": "t1"}))  # one-shot action
    assert not user_acted(body(2), body(2))  # our own status write coming back


def test_a_persons_action_overtakes_due_timers_and_first_passes() -> None:
    queue = WorkQueue()
    for i in range(5):
        queue.add(("ml", f"new-{i}"))
    for i in range(5):
        queue.add(("ml", f"timer-{i}"), urgent=True)
    queue.add(("ml", "mnist"), urgent=True)  # already waiting behind the timers ...
    queue.add(("ml", "mnist"), first=True)  # ... then the abort annotation arrives
    assert queue.get() == ("ml", "mnist")
    assert queue.get() == ("ml", "timer-0")
