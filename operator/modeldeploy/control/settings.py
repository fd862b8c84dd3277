"""The operator's settings: each a documented field, read once at start-up from the
environment of its Deployment (never ``os.environ`` scattered through modules)."""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.spec import image_reference_problem
from ..children.deployment import BuildOptions
from ..kube.lease import LeaseTimings

LEASE_VARIABLES = (
    "MODELDEPLOY_LEASE_DURATION_SECONDS",
    "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS",
    "MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS",
)


@dataclass(frozen=True)
class Settings:
    # MODELDEPLOY_WORKERS: reconcile threads. Passes are I/O-bound (API calls, model
    # checks): threads overlap the waits, and a busy API server that creates Services
    # one at a time still has requests queued from the others.
    workers: int = 32
    # MODELDEPLOY_FIRST_PASS_WORKERS: at most this many of the workers run first rollouts
    # and resyncs at once; the others stay free for rollouts under way. A first rollout
    # creates a Service, and the API server allocates ClusterIPs one at a time: a longer
    # line there only makes each wait longer, until waits pass the read timeout and the
    # allocations are given back. So fewer run while Service creates take over 10 s
    # (halved on each such episode, raised again as they speed up).
    first_pass_workers: int = 16
    # MODELDEPLOY_RESYNC_SECONDS: every resource's unwatched children (ConfigMaps, Services)
    # are checked this often, and those changed or deleted since applied are applied again.
    resync_seconds: float = 600.0
    # MODELDEPLOY_RELIST_SECONDS: the ModelDeployments are listed again this often: one
    # deleted while kopf's watch was down (no DELETED event ever comes for it) leaves the
    # cache. The children need none (their reflectors: kube/reflector.py).
    relist_seconds: float = 60.0
    # MODELDEPLOY_FETCHER_IMAGE: the model fetcher init container's image; pin it by digest
    # (modeldeploy/fetcher:0.1.0@sha256:<64 hex>) so every node runs the same bytes. A value that
    # is not an image reference stops the operator at start, naming it.
    fetcher_image: str = BuildOptions.fetcher_image
    # MODELDEPLOY_LEADER_ELECTION: "true" to run several replicas, one leading at a time
    # (manifests/operator.yaml sets it); off for a single operator run by hand or a test.
    leader_election: bool = False
    # MODELDEPLOY_SHARDS: the ModelDeployments are split over this many shards (by a hash of
    # namespace/name), each held by one replica at a time through its own Lease; live
    # replicas share them by rendezvous hashing. 1 (the default): one Lease, today's leader
    # election, no heartbeat writes. More shards than replicas spread the load evenly; each
    # held shard costs its holder one Lease renewal per retry period, idle or not.
    shard_count: int = 1
    # MODELDEPLOY_LEASE_NAMESPACE / _NAME: the Lease the replicas elect on; the namespace
    # defaults to the pod's own (POD_NAMESPACE, from the downward API).
    lease_namespace: str = "modeldeploy-system"
    lease_name: str = "modeldeploy-operator"
    # POD_NAME: this replica's identity in the Lease (downward API); else host and pid.
    identity: str = ""
    # MODELDEPLOY_LEASE_DURATION_SECONDS, _RENEW_DEADLINE_SECONDS, _RETRY_PERIOD_SECONDS:
    # client-go's timings; the defaults are in LeaseTimings (10, 7, 2). A standby takes over
    # a crashed leader's lease after about lease duration + retry period; a clean shutdown
    # hands over within a retry period.
    # MODELDEPLOY_METRICS_ADDRESS, _PORT, _PATH: where /metrics is served (port 0: not at all).
    metrics_address: str = "0.0.0.0"  # in a pod, for Prometheus to scrape
    metrics_port: int = 8081
    metrics_path: str = "/metrics"
    # MODELDEPLOY_NOTIFICATIONS_CONFIG: a YAML file of webhooks (control/notices.py);
    # none when empty. Read once at start: a bad file stops the operator, naming the problem.
    notifications_config: str = ""
    lease_duration_seconds: float = LeaseTimings.lease_duration
    renew_deadline_seconds: float = LeaseTimings.renew_deadline
    retry_period_seconds: float = LeaseTimings.retry_period
    # MODELDEPLOY_PROMETHEUS_ALLOWED: the Prometheus servers a ModelDeployment's
    # analysis.prometheus.address may name, comma-separated base URLs
    # (http(s)://host[:port][/path]); an address is admitted when it has an entry's scheme,
    # host and port and its path is the entry's or below it. An entry ending in ":" admits
    # every port of its host. Empty (the default): none, and such an analysis stays
    # Inconclusive. The operator asks these from its own pod, so a tenant's address must
    # never reach metadata or cluster-internal services the admin did not list.
    prometheus_allowed: tuple[str, ...] = ()
    # MODELDEPLOY_WEBHOOK_ALLOWED: the URLs a ModelDeployment's analysis.webhooks may call,
    # comma-separated base URLs admitting as MODELDEPLOY_PROMETHEUS_ALLOWED's do (scheme, host,
    # port, and a path at or below the entry's). Empty (the default): none; a gate whose URL no
    # entry admits is refused with reason WebhookNotAllowed and never called, for the same
    # reason: the operator's pod reaches what a tenant must not.
    webhook_allowed: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def number(name: str, default: float, kind: type[int] | type[float] = float) -> Any:
            # One message naming the variable: a Service named modeldeploy-metrics once set
            # MODELDEPLOY_METRICS_PORT=tcp://... in the pod, and int() said only "invalid literal".
            text = env.get(name)
            if text is None:
                return default
            try:
                return kind(text)
            except ValueError:
                raise ValueError(
                    f"{name}={text!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None

        return cls(
            workers=number("MODELDEPLOY_WORKERS", cls.workers, int),
            first_pass_workers=number("MODELDEPLOY_FIRST_PASS_WORKERS", cls.first_pass_workers, int),
            resync_seconds=number("MODELDEPLOY_RESYNC_SECONDS", cls.resync_seconds),
            relist_seconds=number("MODELDEPLOY_RELIST_SECONDS", cls.relist_seconds),
            fetcher_image=_image(
                "MODELDEPLOY_FETCHER_IMAGE", env.get("MODELDEPLOY_FETCHER_IMAGE", cls.fetcher_image)
            ),
            leader_election=env.get("MODELDEPLOY_LEADER_ELECTION", "false").lower() == "true",
            lease_namespace=env.get(
                "MODELDEPLOY_LEASE_NAMESPACE", env.get("POD_NAMESPACE", cls.lease_namespace)
            ),
            lease_name=env.get("MODELDEPLOY_LEASE_NAME", cls.lease_name),
            shard_count=number("MODELDEPLOY_SHARDS", cls.shard_count, int),
            identity=env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            metrics_address=env.get("MODELDEPLOY_METRICS_ADDRESS", cls.metrics_address),
            metrics_port=number("MODELDEPLOY_METRICS_PORT", cls.metrics_port, int),
            metrics_path=env.get("MODELDEPLOY_METRICS_PATH", cls.metrics_path),
            notifications_config=env.get("MODELDEPLOY_NOTIFICATIONS_CONFIG", cls.notifications_config),
            lease_duration_seconds=number("MODELDEPLOY_LEASE_DURATION_SECONDS", cls.lease_duration_seconds),
            renew_deadline_seconds=number(
                "MODELDEPLOY_LEASE_RENEW_DEADLINE_SECONDS", cls.renew_deadline_seconds
            ),
            retry_period_seconds=number("MODELDEPLOY_LEASE_RETRY_PERIOD_SECONDS", cls.retry_period_seconds),
            prometheus_allowed=_listed(env.get("MODELDEPLOY_PROMETHEUS_ALLOWED", "")),
            webhook_allowed=_listed(env.get("MODELDEPLOY_WEBHOOK_ALLOWED", "")),
        )

    def validate(self) -> Settings:
        """These settings, or a ValueError naming every setting that is unsafe together
        with the others. Checked at start-up, apart from ``from_env``, which reads each
        variable on its own."""
        problems = self.lease_timings.problems(LEASE_VARIABLES)
        counts = {
            "MODELDEPLOY_WORKERS": self.workers,
            "MODELDEPLOY_FIRST_PASS_WORKERS": self.first_pass_workers,
            "MODELDEPLOY_SHARDS": self.shard_count,
        }
        problems += [f"{name}={count} must be at least 1" for name, count in counts.items() if count < 1]
        problems += [
            f"MODELDEPLOY_PROMETHEUS_ALLOWED: {entry!r} is not an http(s)://host[:port][/path] base URL"
            for entry in self.prometheus_allowed
            if not base_url(entry)
        ]
        problems += [
            f"MODELDEPLOY_WEBHOOK_ALLOWED: {entry!r} is not an http(s)://host[:port][/path] base URL"
            for entry in self.webhook_allowed
            if not base_url(entry)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def lease_timings(self) -> LeaseTimings:
        return LeaseTimings(
            self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds
        )

    @property
    def build_options(self) -> BuildOptions:
        # Shards are in force only with leader election (``runtime._shards``).
        shards = self.shard_count if self.leader_election else 1
        return BuildOptions(fetcher_image=self.fetcher_image, shard_count=shards)


def _listed(text: str) -> tuple[str, ...]:
    return tuple(entry.strip() for entry in text.split(",") if entry.strip())


def base_url(entry: str) -> bool:
    """Whether ``entry`` is a base URL an allow-list can hold: http(s), a host, no
    credentials, query or fragment."""
    parts = urllib.parse.urlsplit(entry)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and not parts.query
        and not parts.fragment
    )


def _image(name: str, image: str) -> str:
    problem = image_reference_problem(image)
    if problem:
        raise ValueError(f"{name}={problem}")
    return image
