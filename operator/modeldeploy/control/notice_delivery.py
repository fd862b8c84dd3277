"""Delivering notifications: one bounded queue and one sender thread per webhook, so a dead or
hanging receiver delays only its own queue, and a reconcile pass only ever enqueues (never
waits; when the queue is full the event is dropped and counted). Each POST is bounded as a
whole (bounded_http); failures that may pass are tried again, a bounded number of times."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..api.status import ModelDeploymentStatus
from ..probes import bounded_http
from . import operator_metrics
from .notice_formats import SIGNATURE_HEADER, render, signature
from .notices import NotificationsConfig, Webhook, notices

LOG = logging.getLogger(__name__)
MAX_REPLY_BYTES = 64 * 1024
# Waits between attempts double from the first, up to the longest.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
RETRIED_STATUSES = frozenset({408, 429})

Post = Callable[..., tuple[int, bytes]]


class WebhookSender:
    """The queue and the thread of one webhook."""

    def __init__(self, webhook: Webhook, queue_size: int, post: Post = bounded_http.request) -> None:
        self.webhook = webhook
        self._post = post
        self._queue: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"notify-{webhook.name}", daemon=True)
        self._thread.start()

    def offer(self, event: str, content_type: str, payload: bytes) -> bool:
        """Queue one event; False (dropped, counted) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait((event, content_type, payload))
        except queue.Full:
            operator_metrics.NOTIFICATIONS.labels(self.webhook.name, event, "dropped").inc()
            LOG.warning("webhook %s: queue full, %s dropped", self.webhook.name, event)
            return False
        operator_metrics.NOTIFICATION_QUEUE.labels(self.webhook.name).set(self._queue.qsize())
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # then the thread sees _stopping after its POST
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            item = self._queue.get()
            operator_metrics.NOTIFICATION_QUEUE.labels(self.webhook.name).set(self._queue.qsize())
            if item is None:
                return
            event, content_type, payload = item
            result = self._deliver(event, self._headers(content_type, payload), payload)
            operator_metrics.NOTIFICATIONS.labels(self.webhook.name, event, result).inc()

    def _headers(self, content_type: str, payload: bytes) -> dict[str, str]:
        headers = {**self.webhook.headers, "Content-Type": content_type}
        if self.webhook.signing_secret:
            headers[SIGNATURE_HEADER] = signature(self.webhook.signing_secret, payload)
        return headers

    def _deliver(self, event: str, headers: dict[str, str], payload: bytes) -> str:
        hook = self.webhook
        problem = ""
        for attempt in range(hook.max_attempts):
            if attempt and self._stopping.wait(
                min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            ):
                break
            try:
                status, _ = self._post(
                    "POST", hook.url, hook.timeout_seconds, MAX_REPLY_BYTES, payload, headers
                )
            except bounded_http.FetchError as exc:
                problem = str(exc)
                continue
            if 200 <= status < 300:
                return "delivered"
            problem = f"HTTP {status}"
            if status < 500 and status not in RETRIED_STATUSES:
                break  # the receiver refuses this event: sending it again changes nothing
        LOG.warning(
            "webhook %s: %s not delivered after %d attempt(s): %s", hook.name, event, attempt + 1, problem
        )
        return "failed"


class Notifier:
    """Turns status changes into notices and hands them to the webhooks that want them."""

    def __init__(self, config: NotificationsConfig, post: Post = bounded_http.request) -> None:
        self.senders = [WebhookSender(w, config.queue_size, post) for w in config.webhooks]

    def status_changed(
        self, body: dict[str, Any], previous: ModelDeploymentStatus, current: ModelDeploymentStatus, now: str
    ) -> None:
        namespace = body["metadata"]["namespace"]
        for notice in notices(previous, current):
            for sender in self.senders:
                if sender.webhook.wants(notice.event, namespace):
                    content_type, payload = render(sender.webhook.format, notice, body, current, now)
                    sender.offer(notice.event.value, content_type, payload)

    def close(self) -> None:
        for sender in self.senders:
            sender.close()
