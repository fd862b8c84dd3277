"""Webhook gates, the calls: the plan names the gates to ask; each call runs off the reconcile
workers, bounded by its gate's timeoutSeconds, and a later pass reads its answer.

A URL no entry of the admin's allow-list (MODELDEPLOY_WEBHOOK_ALLOWED) admits is answered at
once with a WebhookNotAllowed refusal and never dialled. Answers are kept in memory only until
the next pass reads them; status keeps them after that, so a restart loses at most a call
under way, and the gate is asked again (gates must bear being asked twice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from ..api.times import utc_now
from ..api.webhook_gates import GatePoint
from ..probes import webhook_gate
from ..rollout.webhooks import WebhookAnswer, WebhookCall

LOG = logging.getLogger(__name__)

CallKey = tuple[int, GatePoint, int, str, str]  # version, point, step, gate name, url
Ask = Callable[[str, bytes, float], webhook_gate.GateAnswer]


@dataclass
class WebhookCalls:
    # The base URLs the gates may lie under (MODELDEPLOY_WEBHOOK_ALLOWED): none by default.
    allowed: tuple[str, ...] = ()
    # Where the calls run; None: in the pass itself (unit tests).
    executor: Executor | None = None
    # Told (namespace, name) when one of a resource's calls has ended.
    on_done: Callable[[str, str], None] = lambda namespace, name: None
    # Stamps each answer; the operator gives it the API server's clock, as every status time.
    clock: Callable[[], str] = utc_now
    ask: Ask = webhook_gate.ask
    # (namespace, name) -> the calls under way or ended and not read yet
    _jobs: dict[tuple[str, str], dict[CallKey, Future[WebhookAnswer]]] = field(default_factory=dict)

    def answers(self, namespace: str, name: str) -> tuple[WebhookAnswer, ...]:
        """The resource's calls that ended since its last pass; each is read once."""
        jobs = self._jobs.get((namespace, name))
        if not jobs:
            return ()
        ended = [key for key, job in jobs.items() if job.done()]
        read = [jobs.pop(key) for key in ended]
        answers = []
        for job in read:
            if job.cancelled():
                continue
            failure = job.exception()
            if failure is not None:  # asked again by the next plan
                LOG.warning("%s/%s: a webhook call failed: %r", namespace, name, failure)
                continue
            answers.append(job.result())
        return tuple(answers)

    def start(self, namespace: str, name: str, calls: tuple[WebhookCall, ...]) -> None:
        """Start the calls the plan asks for; one already under way is not started twice."""
        if not calls:
            return
        jobs = self._jobs.setdefault((namespace, name), {})
        for call in calls:
            key: CallKey = (call.version, call.at, call.step, call.name, call.url)
            if key in jobs:
                continue
            refusal = webhook_gate.webhook_refusal(call.url, self.allowed)
            if refusal is not None:
                LOG.warning("%s/%s: webhook %s not called: %s", namespace, name, call.name, refusal)
                jobs[key] = _answered(self._answer(call, webhook_gate.GateAnswer(False, refusal)))
                self.on_done(namespace, name)
            elif self.executor is None:
                jobs[key] = _answered(self._call(call))
            else:
                job = self.executor.submit(self._call, call)
                jobs[key] = job
                job.add_done_callback(lambda _: self.on_done(namespace, name))

    def _call(self, call: WebhookCall) -> WebhookAnswer:
        body = json.dumps(call.body, separators=(",", ":")).encode()
        return self._answer(call, self.ask(call.url, body, call.timeout_seconds))

    def _answer(self, call: WebhookCall, said: webhook_gate.GateAnswer) -> WebhookAnswer:
        return WebhookAnswer(
            call.version, call.name, call.at, call.step, said.allowed, said.detail, self.clock()
        )

    def forget(self, namespace: str, name: str) -> None:
        for job in self._jobs.pop((namespace, name), {}).values():
            job.cancel()

    def close(self) -> None:
        """Start no more calls; those under way end within their timeout, unwaited for."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)


def _answered(answer: WebhookAnswer) -> Future[WebhookAnswer]:
    done: Future[WebhookAnswer] = Future()
    done.set_result(answer)
    return done
