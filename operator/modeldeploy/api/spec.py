"""Pydantic models of the ModelDeployment spec: the v1alpha1 contract.

The CRD's openAPIV3Schema is generated from these classes (see ``crdgen``), so a
field, default, bound or enum added here reaches the API server's validation.
Cross-field rules the schema cannot express are CEL rules attached with
``cel_rules`` and are also enforced here, so unit tests and the operator agree
with the API server.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .affinity import Affinity
from .base import CamelModel
from .custom_metric import MAX_METRICS, METRICS_CEL_RULES, CustomMetric
from .fetch_protocol import DIGEST_PATTERN
from .placement import (
    LABEL_KEY_PATTERN,
    LABEL_VALUE_PATTERN,
    OWNED_ENV_PREFIX,
    OWNED_LABEL_KEYS,
    OWNED_PREFIX,
    EnvVar,
    Toleration,
    TopologySpread,
    keys_are_label_keys,
)
from .quantity import QUANTITY_PATTERN
from .times import DURATION_PATTERN, duration, parse_duration
from .webhook_gates import MAX_WEBHOOKS, WebhookGate

# TF Serving pinned to a release tag; never `latest`, so a node pull is reproducible.
DEFAULT_SERVING_IMAGE = "tensorflow/serving:2.18.0"
STORAGE_URI_PATTERN = r"^(s3|gs|https?|pvc|file)://.+"


# Kubernetes object names (a Secret's): an RFC 1123 subdomain.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A container image reference as registries parse it: [host[:port]/]path[:tag][@algorithm:hex].
# A digest (``repo:tag@sha256:<64 hex>``) pins the exact image, which a tag alone never does (a
# tag can be pushed again); a typo (white space, upper case in the path, a stray colon) is
# refused here rather than found as ImagePullBackOff on every node.
_IMAGE_HOST = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IMAGE_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    rf"^(?:{_IMAGE_HOST}(?:\.{_IMAGE_HOST})*(?::[0-9]+)?/)?"
    rf"{_IMAGE_PATH_COMPONENT}(?:/{_IMAGE_PATH_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def image_reference_problem(image: str) -> str | None:
    """Why ``image`` is not an image reference (None when it is one): for settings read from
    the environment, which no schema checks."""
    if re.fullmatch(IMAGE_PATTERN, image) is None:
        return f"{image!r} is not an image reference ([host[:port]/]path[:tag][@sha256:<digest>])"
    return None


class ModelSpec(CamelModel):
    """The model to serve: where its versions are stored and which one this resource serves."""

    name: str | None = Field(
        default=None,
        description="TF Serving model name; defaults to metadata.name.",
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
    )
    storage_uri: str = Field(
        description="Base path holding numeric version folders: s3://, gs://, http(s)://, pvc://, file://.",
        pattern=STORAGE_URI_PATTERN,
        max_length=2048,
    )
    # TF Serving's versions are int64, but the API server reads a schema's maximum as a float:
    # 2**63 - 1 rounds past int64 and refused every version. 2**53 - 1 is also the largest
    # integer every JSON client reads exactly.
    version: int = Field(ge=1, le=2**53 - 1, description="The model version this resource must serve.")
    storage_secret_name: str | None = Field(
        default=None,
        description="Secret with credentials for the model fetch.",
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )
    digest: str | None = Field(
        default=None,
        max_length=71,
        pattern=DIGEST_PATTERN,
        description="The digest the fetched version must have (sha256:<64 hex>, as the fetcher reports "
        "it in status); a version with another is refused, so an artifact overwritten in storage "
        "never serves.",
    )


class Batching(CamelModel):
    """TF Serving's server-side batching (--enable_batching with a batching parameters file)."""

    max_batch_size: int = Field(default=32, ge=1, le=1_000_000)
    """The largest batch TF Serving forms."""
    batch_timeout_micros: int = Field(default=1000, ge=0, le=60_000_000)
    """How long a partial batch waits for more requests."""
    max_enqueued_batches: int = Field(default=100, ge=1, le=1_000_000)
    """Batches queued before requests are refused."""
    num_batch_threads: int = Field(default=4, ge=1, le=1024)
    """Threads processing batches."""


class RuntimeSpec(CamelModel):
    """How the serving pods run: image, resources, TF Serving flags, model volume."""

    image: str = Field(default=DEFAULT_SERVING_IMAGE, min_length=1, max_length=1024, pattern=IMAGE_PATTERN)
    """The TF Serving image of the serving container (a release tag by default, never latest); a
    digest pins it exactly: ``tensorflow/serving:2.18.0@sha256:<64 hex>``."""
    resources: dict[str, Any] = Field(
        # limits, requests and claims: the API server checks what is inside on the Deployment.
        default_factory=dict,
        max_length=3,
        description="core/v1 ResourceRequirements (GPUs included).",
    )
    batching: Batching | None = None
    """Server-side batching; off when absent."""
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, max_length=64, description="Extra tensorflow_model_server flags."
    )
    network_policy: bool = Field(
        default=False, description="Add a NetworkPolicy admitting only the gRPC and REST ports."
    )
    model_volume_size_limit: str = Field(
        default="10Gi",
        pattern=QUANTITY_PATTERN,
        max_length=16,
        description="sizeLimit of the model's emptyDir; the fetcher refuses a model (or an archive that "
        "expands) beyond it.",
    )
    node_selector: dict[
        str, Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
    ] = Field(default_factory=dict, max_length=64)
    """Node labels the serving pods must run on (a GPU pool, say): core/v1 nodeSelector."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Taints the serving pods tolerate (a GPU pool's, say)."""
    topology_spread_constraints: list[TopologySpread] = Field(default_factory=list, max_length=8)
    """How the pods of each model version spread over zones or nodes."""
    affinity: Affinity | None = None
    """Node affinity, pod affinity and anti-affinity of the serving pods: core/v1 Affinity."""
    priority_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """The serving pods' PriorityClass."""
    service_account_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """The serving pods' ServiceAccount (cloud identity: IRSA, Workload Identity). No API token
    is mounted in any case: TF Serving never calls the Kubernetes API."""
    pod_annotations: dict[str, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict, max_length=64
    )
    """More annotations of the serving pods; keys under serving.modeldeploy.dev/ are the operator's."""
    pod_labels: dict[str, Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]] = (
        Field(default_factory=dict, max_length=64)
    )
    """More labels of the serving pods; app.kubernetes.io/name, app.kubernetes.io/managed-by and
    keys under serving.modeldeploy.dev/ are the operator's."""
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    """More environment variables of the serving container."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        keys_are_label_keys("nodeSelector"),
        keys_are_label_keys("podLabels"),
        keys_are_label_keys("podAnnotations"),
        (
            "!has(self.podLabels) || self.podLabels.all(k, !(k in "
            + str(list(OWNED_LABEL_KEYS))
            + f") && !k.startsWith('{OWNED_PREFIX}'))",
            "podLabels must not set the operator's labels: app.kubernetes.io/name, "
            "app.kubernetes.io/managed-by, serving.modeldeploy.dev/*",
            ".podLabels",
        ),
        (
            f"!has(self.podAnnotations) || self.podAnnotations.all(k, !k.startsWith('{OWNED_PREFIX}'))",
            "podAnnotations must not set the operator's annotations (serving.modeldeploy.dev/*)",
            ".podAnnotations",
        ),
        (
            f"!has(self.env) || self.env.all(e, !e.name.startsWith('{OWNED_ENV_PREFIX}'))",
            "env names starting MODELDEPLOY_ are the operator's",
            ".env",
        ),
        (
            # The pod's env is a list keyed by name: server-side apply of a Deployment with a
            # repeated name fails with a server error ("duplicate entries for key"), not a reason.
            "!has(self.env) || self.env.all(a, self.env.exists_one(b, b.name == a.name))",
            "env names must be unique",
            ".env",
        ),
        (
            "!has(self.topologySpreadConstraints) || self.topologySpreadConstraints.all(a, "
            "self.topologySpreadConstraints.exists_one(b, b.topologyKey == a.topologyKey && "
            "b.whenUnsatisfiable == a.whenUnsatisfiable))",
            "topologySpreadConstraints must not repeat a topologyKey with the same whenUnsatisfiable",
            ".topologySpreadConstraints",
        ),
    ]

    @model_validator(mode="after")
    def _nothing_the_operator_owns(self) -> RuntimeSpec:
        for field, keys in (
            ("nodeSelector", self.node_selector),
            ("podLabels", self.pod_labels),
            ("podAnnotations", self.pod_annotations),
        ):
            if any(not re.match(LABEL_KEY_PATTERN, k) for k in keys):
                raise ValueError(f"runtime.{field} keys must be qualified names")
        owned = [k for k in self.pod_labels if k in OWNED_LABEL_KEYS or k.startswith(OWNED_PREFIX)]
        if owned:
            raise ValueError(f"runtime.podLabels must not set the operator's labels: {owned}")
        if any(k.startswith(OWNED_PREFIX) for k in self.pod_annotations):
            raise ValueError("runtime.podAnnotations must not set the operator's annotations")
        if any(e.name.startswith(OWNED_ENV_PREFIX) for e in self.env):
            raise ValueError("runtime.env names starting MODELDEPLOY_ are the operator's")
        if len({e.name for e in self.env}) != len(self.env):
            raise ValueError("runtime.env names must be unique")
        spreads = [(c.topology_key, c.when_unsatisfiable) for c in self.topology_spread_constraints]
        if len(set(spreads)) != len(spreads):
            raise ValueError("runtime.topologySpreadConstraints must not repeat a topologyKey")
        return self


class Autoscaling(CamelModel):
    """A HorizontalPodAutoscaler for the stable version, on CPU utilisation."""

    min_replicas: int = Field(default=1, ge=1, le=1000)
    """The fewest pods of the stable version."""
    max_replicas: int = Field(ge=1, le=1000)
    """The most pods of the stable version."""
    target_cpu_utilization_percentage: int = Field(default=70, ge=1, le=100)
    """Average CPU utilisation the HPA aims for."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "self.minReplicas <= self.maxReplicas",
            "minReplicas must be less than or equal to maxReplicas",
            ".minReplicas",
        )
    ]

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must be less than or equal to maxReplicas")
        return self


class Strategy(StrEnum):
    CANARY = "Canary"
    IMMEDIATE = "Immediate"


# A step's pause that only a person ends.
MANUAL_PAUSE = "Manual"
PAUSE_PATTERN = rf"^{MANUAL_PAUSE}$|{DURATION_PATTERN}"


class CanaryStep(CamelModel):
    """One canary step: a traffic weight, held for a pause while analysis checks run."""

    weight: int = Field(ge=1, le=99, description="Percent of traffic sent to the canary.")
    pause: str = Field(
        default="60s",
        pattern=PAUSE_PATTERN,
        max_length=32,
        description=f"How long to hold: a duration, or {MANUAL_PAUSE} to hold until promoted.",
    )

    @property
    def manual(self) -> bool:
        """Held until a person promotes it (the plugin's promote, or the annotation)."""
        return self.pause == MANUAL_PAUSE

    @property
    def pause_time(self) -> timedelta:
        return timedelta.max if self.manual else duration(self.pause)


# Steps when the spec gives none: a small share of the traffic first, then half.
DEFAULT_CANARY_STEPS = (CanaryStep(weight=10, pause="60s"), CanaryStep(weight=50, pause="60s"))


class Threshold(CamelModel):
    """Bounds a measured value must stay within; an absent bound is not checked."""

    min: float | None = Field(default=None, ge=0)
    """The lowest value allowed."""
    max: float | None = Field(default=None, ge=0)
    """The highest value allowed."""


class ShareThreshold(Threshold):
    """Bounds of a share (0 to 1); an absent bound is not checked."""

    min: float | None = Field(default=None, ge=0, le=1)
    """The lowest share allowed."""
    max: float | None = Field(default=None, ge=0, le=1)
    """The highest share allowed."""


class LatencyThreshold(Threshold):
    """Bounds of a latency in milliseconds, at most an hour; an absent bound is not checked."""

    min: float | None = Field(default=None, ge=0, le=3_600_000)
    """The lowest latency allowed."""
    max: float | None = Field(default=None, ge=0, le=3_600_000)
    """The highest latency allowed."""


class PrometheusSource(CamelModel):
    """Read the canary's metrics from Prometheus instead of scraping its pods."""

    address: str = Field(
        # Scheme, host and an optional path prefix: a query or fragment would cancel the
        # API path the operator appends.
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        max_length=512,
        description="Prometheus base URL: http(s)://host[:port][/path prefix], no query or fragment.",
    )
    version_label: str = Field(
        default="version",
        max_length=128,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label carrying the pod's serving.modeldeploy.dev/version.",
    )


class OnInconclusive(StrEnum):
    ROLLBACK = "Rollback"
    PAUSE = "Pause"


NOTHING_TO_COMPARE = "relative needs successRateMaxDrop or latencyP99MaxRatio: nothing to compare otherwise"
CONFIDENCE_BOUNDS = (
    "confidence must lie in (0.5, 0.9999]: at 0.5 or less a test decides by chance, at 1 it never decides"
)


class RelativeAnalysis(CamelModel):
    """The canary judged against the stable over the same window, by a statistical test at
    ``confidence``: Failed only when the canary is worse beyond the allowance with that
    confidence, Passed only when it is within the allowance with that confidence, else
    Inconclusive (too few requests to tell)."""

    success_rate_max_drop: float | None = Field(default=None, ge=0, le=1)
    """How far the canary's success rate may fall below the stable's (0.005: half a point).
    Judged by a one-sided two-proportion test of the error counts (Agresti-Caffo)."""
    latency_p99_max_ratio: float | None = Field(default=None, ge=1, le=100, alias="latencyP99MaxRatio")
    """How many times the stable's p99 latency the canary's may reach (1.2: 20% slower).
    Judged on TF Serving's latency histograms, bucket by bucket: the share of canary requests
    above the bucket bound at this multiple of the stable's p99 bucket, against 1%, by an exact
    binomial test."""
    # The schema's own maximum would read "less than or equal to 0" in the API server's
    # message (it prints the bound as an integer): the bounds are one CEL rule instead.
    confidence: float = Field(default=0.95, ge=0, le=1)
    """How sure a verdict must be (above 0.5, at most 0.9999); below it the check is
    Inconclusive, never Passed."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "has(self.successRateMaxDrop) || has(self.latencyP99MaxRatio)",
            NOTHING_TO_COMPARE,
            "",
        ),
        (
            "!has(self.confidence) || self.confidence > 0.5 && self.confidence <= 0.9999",
            CONFIDENCE_BOUNDS,
            ".confidence",
        ),
    ]

    @model_validator(mode="after")
    def _compares_something(self) -> RelativeAnalysis:
        if self.success_rate_max_drop is None and self.latency_p99_max_ratio is None:
            raise ValueError(NOTHING_TO_COMPARE)
        if not 0.5 < self.confidence <= 0.9999:
            raise ValueError(CONFIDENCE_BOUNDS)
        return self


class Analysis(CamelModel):
    """Automated analysis of the canary during its steps: a check every interval on the
    canary's own traffic; failureLimit failed checks roll it back."""

    interval: str = Field(default="30s", pattern=DURATION_PATTERN, max_length=32)
    """How often the canary is checked (a duration: 30s, 2m)."""
    failure_limit: int = Field(default=2, ge=1, le=1000)
    """Failed checks that roll the canary back."""
    min_requests: int = Field(default=100, ge=0, le=1_000_000_000)
    """Requests a check needs to judge; with fewer it is Inconclusive, never Passed."""
    success_rate: ShareThreshold | None = None
    """Bounds of the canary's share of OK answers (0 to 1)."""
    latency_p99_ms: LatencyThreshold | None = Field(default=None, alias="latencyP99Ms")
    """Bounds of the canary's 99th percentile latency, in milliseconds."""
    prometheus: PrometheusSource | None = None
    """Read metrics from Prometheus; without it the operator scrapes the canary's pods."""
    window: str = Field(default="2m", pattern=DURATION_PATTERN, max_length=32)
    """The range of the Prometheus queries (increase() over it). At least two scrapes must fall
    in it, or Prometheus returns nothing and every check is Inconclusive: the default covers a
    30 s scrape interval four times. The pods scrape provider counts between checks instead."""
    on_inconclusive: OnInconclusive = OnInconclusive.ROLLBACK
    """What a canary whose checks stay Inconclusive (too little traffic) meets at the progress
    deadline: Rollback, or Pause (hold the step, with a WaitingForTraffic reason, until traffic
    arrives or someone promotes or aborts)."""
    relative: RelativeAnalysis | None = None
    """Judge the canary against the stable version over the same window, from the same source
    (the stable's pods, or Prometheus), beside the absolute bounds above."""
    webhooks: list[WebhookGate] = Field(default_factory=list, max_length=MAX_WEBHOOKS)
    """HTTP checks at named points of a canary that must answer 2xx to go on; only to URLs the
    operator's admin allows."""
    metrics: list[CustomMetric] = Field(default_factory=list, max_length=MAX_METRICS)
    """Custom PromQL metrics judged at every check beside the built-in ones (needs prometheus);
    a failing one fails the check, one without data makes it Inconclusive."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.webhooks) || self.webhooks.all(a, self.webhooks.exists_one(b, b.name == a.name))",
            "webhooks names must be unique",
            ".webhooks",
        ),
        *METRICS_CEL_RULES,
    ]

    @field_validator("webhooks")
    @classmethod
    def _unique_webhook_names(cls, webhooks: list[WebhookGate]) -> list[WebhookGate]:
        names = [w.name for w in webhooks]
        if len(set(names)) != len(names):
            raise ValueError("analysis.webhooks names must be unique")
        return webhooks

    @model_validator(mode="after")
    def _metrics_asked_of_prometheus(self) -> Analysis:
        if self.metrics and self.prometheus is None:
            raise ValueError(
                "analysis.metrics need analysis.prometheus: their queries are asked of Prometheus"
            )
        names = [metric.name for metric in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("analysis.metrics names must be unique")
        return self

    @property
    def interval_time(self) -> timedelta:
        return duration(self.interval)

    @property
    def window_time(self) -> timedelta:
        return duration(self.window)


class SignaturePolicy(StrEnum):
    COMPATIBLE = "Compatible"
    IDENTICAL = "Identical"
    IGNORE = "Ignore"


class CompareTo(StrEnum):
    EXPECTED = "Expected"
    STABLE = "Stable"


class ConfigMapKeyRef(CamelModel):
    """A key of a ConfigMap in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """The ConfigMap's name."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key holding the data."""


class Tolerance(CamelModel):
    """Two numbers match when |got - expected| <= absolute + relative * |expected|."""

    absolute: float = Field(default=1e-6, ge=0, le=1_000_000)
    """Absolute difference allowed."""
    relative: float = Field(default=1e-4, ge=0, le=1)
    """Difference allowed relative to the expected value."""


class GoldenRequests(CamelModel):
    """Requests each new pod must answer correctly before it takes traffic."""

    config_map_ref: ConfigMapKeyRef = Field(
        description="A ConfigMap key holding TF Serving REST predict bodies, one JSON object a line; "
        "a line's optional 'expected' holds the outputs it must get (as 'predictions' or 'outputs')."
    )
    compare_to: CompareTo = Field(
        default=CompareTo.EXPECTED,
        description="Expected: each answer must match its line's 'expected'. Stable: answers must agree "
        "with the serving version's on at least minAgreement of the requests.",
    )
    tolerance: Tolerance = Field(default_factory=Tolerance, json_schema_extra={"default": {}})
    """How close a number must be to the one it is compared with."""
    min_agreement: float = Field(
        default=1.0, ge=0, le=1, description="compareTo Stable: the share of requests that must agree."
    )


class PreTraffic(CamelModel):
    """Checks each new pod passes before its model gate opens, so no user is the first to
    meet a changed signature, wrong answers, or a cold model."""

    signature: SignaturePolicy = Field(
        default=SignaturePolicy.COMPATIBLE,
        description="How a new version's signatures must relate to the serving version's: Compatible "
        "(clients of the serving version keep working), Identical, or Ignore.",
    )
    warmup_requests: int = Field(
        default=0,
        ge=0,
        le=10000,
        description="Requests sent to each new pod before it takes traffic: the golden requests in turn, "
        "or zeros shaped by the signature when there are none.",
    )
    golden_requests: GoldenRequests | None = None
    """Requests each new pod must answer as expected before it takes traffic."""


# An Immediate rollout replaces the stable at once: no two versions serve side by side.
RELATIVE_NEEDS_CANARY = (
    "analysis.relative needs strategy Canary: with Immediate no stable serves beside the new version "
    "to compare it with"
)


class RolloutSpec(CamelModel):
    """How a new version replaces the serving one."""

    strategy: Strategy = Strategy.CANARY
    """Canary (steps with analysis) or Immediate (replace at once, a rolling update)."""
    paused: bool = False
    """Hold the canary at its current step until set back to false."""
    steps: list[CanaryStep] = Field(default_factory=list, max_length=20)
    """Canary steps, weights strictly increasing; promotion follows the last."""
    analysis: Analysis | None = None
    """Automated analysis of the canary; without it steps pass on time alone."""
    pre_traffic: PreTraffic | None = None
    """Checks each new pod passes before its model gate opens."""
    progress_deadline_seconds: int = Field(default=600, ge=10, le=604800)
    """Seconds a version may take to become ready, and a canary to make progress, before it is rolled back."""
    count_manual_pauses: bool = False
    """Whether time held at a Manual step counts against progressDeadlineSeconds; by default a
    step that waits for a person never rolls back for waiting."""

    def effective_steps(self) -> tuple[CanaryStep, ...]:
        """The steps a canary walks: the spec's, or the defaults when it gives none."""
        return tuple(self.steps) or DEFAULT_CANARY_STEPS

    shrink_stable: bool = Field(
        default=False,
        description="Router Service: shrink the stable version as the canary grows (GPU budgets) "
        "instead of keeping it at full size.",
    )

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.steps) || self.steps.map(s, s.weight).isSorted() && "
            "self.steps.all(a, self.steps.exists_one(b, b.weight == a.weight))",
            "steps weights must be strictly increasing",
            ".steps",
        ),
        (
            "!has(self.steps) || self.steps.all(s, !has(s.pause) || s.pause == 'Manual' || "
            "duration(s.pause).getSeconds() < self.progressDeadlineSeconds)",
            "every step's pause must be shorter than progressDeadlineSeconds, or the canary always "
            "rolls back",
            ".steps",
        ),
        (
            "!has(self.analysis) || !has(self.analysis.interval) || "
            "duration(self.analysis.interval).getSeconds() < self.progressDeadlineSeconds",
            "analysis.interval must be shorter than progressDeadlineSeconds, or no check can pass in time",
            ".analysis.interval",
        ),
        (
            "!has(self.analysis) || !has(self.analysis.relative) || !has(self.strategy) || "
            "self.strategy != 'Immediate'",
            RELATIVE_NEEDS_CANARY,
            ".analysis.relative",
        ),
        (
            "!has(self.analysis) || !has(self.analysis.webhooks) || "
            "self.analysis.webhooks.all(w, !has(w.timeoutSeconds) || "
            "w.timeoutSeconds < self.progressDeadlineSeconds)",
            "analysis.webhooks timeoutSeconds must be shorter than progressDeadlineSeconds, or a slow "
            "answer always rolls back",
            ".analysis.webhooks",
        ),
        (
            # Gates stand at points of a canary: under Immediate they would never be asked.
            "!has(self.analysis) || !has(self.analysis.webhooks) || size(self.analysis.webhooks) == 0 || "
            "!has(self.strategy) || self.strategy != 'Immediate'",
            "analysis.webhooks gate canaries: strategy Immediate never asks them",
            ".analysis.webhooks",
        ),
    ]

    @field_validator("steps")
    @classmethod
    def _strictly_increasing(cls, steps: list[CanaryStep]) -> list[CanaryStep]:
        weights = [s.weight for s in steps]
        if any(b <= a for a, b in pairwise(weights)):
            raise ValueError("rollout.steps weights must be strictly increasing")
        return steps

    @model_validator(mode="after")
    def _waits_shorter_than_the_deadline(self) -> RolloutSpec:
        deadline = self.progress_deadline_seconds
        if any(not step.manual and parse_duration(step.pause) >= deadline for step in self.steps):
            raise ValueError("every step's pause must be shorter than progressDeadlineSeconds")
        if self.analysis is not None and parse_duration(self.analysis.interval) >= deadline:
            raise ValueError("analysis.interval must be shorter than progressDeadlineSeconds")
        if self.strategy is Strategy.IMMEDIATE and self.analysis is not None and self.analysis.relative:
            raise ValueError(RELATIVE_NEEDS_CANARY)
        if self.analysis is not None and any(w.timeout_seconds >= deadline for w in self.analysis.webhooks):
            raise ValueError("analysis.webhooks timeoutSeconds must be shorter than progressDeadlineSeconds")
        if self.analysis is not None and self.analysis.webhooks and self.strategy is Strategy.IMMEDIATE:
            raise ValueError("analysis.webhooks gate canaries: strategy Immediate never asks them")
        return self


class Router(StrEnum):
    SERVICE = "Service"
    GATEWAY_API = "GatewayAPI"


# Gateway API's own patterns (HTTPRoute v1): what the route's schema would refuse, the
# ModelDeployment refuses at admission, not as a child the operator cannot apply.
HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Two references to one parent must name different sections (HTTPRoute's two rules, as one).
SAME_PARENT = (
    "p1.group == p2.group && p1.kind == p2.kind && p1.name == p2.name && "
    "(has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '')"
)


class ParentRef(CamelModel):
    """A Gateway (or listener of one) the HTTPRoute attaches to: Gateway API's ParentReference."""

    group: str = Field("gateway.networking.k8s.io", max_length=253, pattern=r"^$|" + DNS_SUBDOMAIN_PATTERN)
    """The parent's API group."""
    kind: str = Field(
        "Gateway", min_length=1, max_length=63, pattern=r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
    )
    """The parent's kind."""
    namespace: str | None = Field(
        None, min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    """The parent's namespace; defaults to the resource's."""
    name: str = Field(min_length=1, max_length=253)
    """The parent's name."""
    section_name: str | None = Field(None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """A listener of the parent."""
    port: int | None = Field(None, ge=1, le=65535)
    """A port of the parent."""


class GatewaySpec(CamelModel):
    """The HTTPRoute the GatewayAPI router writes: the Gateways it attaches to and its hostnames."""

    parent_refs: list[ParentRef] = Field(default_factory=list, max_length=16)
    """Gateways (or listeners) the HTTPRoute attaches to."""
    hostnames: list[
        Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]
    ] = Field(default_factory=list, max_length=16)
    """Hostnames the HTTPRoute matches."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.parentRefs) || self.parentRefs.all(p1, self.parentRefs.exists_one(p2, "
            f"{SAME_PARENT} && (has(p1.sectionName) ? p1.sectionName : '') == "
            "(has(p2.sectionName) ? p2.sectionName : '')))",
            "two parentRefs to the same parent need different sectionNames",
            ".parentRefs",
        ),
        (
            "!has(self.parentRefs) || self.parentRefs.all(p1, self.parentRefs.all(p2, "
            f"!({SAME_PARENT}) || has(p1.sectionName) == has(p2.sectionName)))",
            "two parentRefs to the same parent must both name a sectionName",
            ".parentRefs",
        ),
    ]


class TrafficSpec(CamelModel):
    """How traffic is split between the stable version and the canary."""

    router: Router = Router.SERVICE
    """Service (the canary's share of ready pods behind one Service) or GatewayAPI (an
    HTTPRoute with weights)."""
    gateway: GatewaySpec | None = None
    """The HTTPRoute's parents and hostnames (router GatewayAPI)."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.router) || self.router != 'GatewayAPI' || has(self.gateway) "
            "&& has(self.gateway.parentRefs) && size(self.gateway.parentRefs) > 0",
            "router GatewayAPI needs gateway.parentRefs",
            ".gateway",
        )
    ]

    @model_validator(mode="after")
    def _gateway_has_parents(self) -> TrafficSpec:
        if self.router is Router.GATEWAY_API and not (self.gateway and self.gateway.parent_refs):
            raise ValueError("traffic.router GatewayAPI needs gateway.parentRefs")
        return self


class ModelDeploymentSpec(CamelModel):
    """The model version to serve, how its pods run, and how a new version is rolled out."""

    model: ModelSpec
    """The model and the version to serve."""
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, json_schema_extra={"default": {}})
    """How the serving pods run."""
    replicas: int | None = Field(
        default=None, ge=0, le=1000, description="Fixed replica count; defaults to 1 without autoscaling."
    )
    autoscaling: Autoscaling | None = None
    """Scale the stable version with an HPA instead of a fixed replicas."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, json_schema_extra={"default": {}})
    """How a new version replaces the serving one."""
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, json_schema_extra={"default": {}})
    """How traffic is split between versions."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!(has(self.replicas) && has(self.autoscaling))",
            "replicas and autoscaling are mutually exclusive: set one",
            ".replicas",
        )
    ]

    @model_validator(mode="after")
    def _replicas_xor_autoscaling(self) -> ModelDeploymentSpec:
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("replicas and autoscaling are mutually exclusive: set one")
        return self

    @property
    def desired_replicas(self) -> int:
        """Replicas of the serving version when no HPA owns the count."""
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas
        return 1 if self.replicas is None else self.replicas


class ModelDeployment(BaseModel):
    """The whole object as the operator sees it (metadata kept loose)."""

    model_config = ConfigDict(frozen=True)
    name: str
    namespace: str
    uid: str
    generation: int
    spec: ModelDeploymentSpec

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ModelDeployment:
        """The resource as the API server holds it; raises ValidationError on a bad spec."""
        meta = body["metadata"]
        return cls(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=int(meta.get("generation", 1)),
            spec=ModelDeploymentSpec.model_validate(body.get("spec") or {}),
        )

    @property
    def model_name(self) -> str:
        return self.spec.model.name or self.name


def spec_error_message(exc: Exception) -> str:
    """One line naming each bad field, for conditions and events."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"spec.{loc}: {err.get('msg')}" if loc else f"spec: {err.get('msg')}")
    return "; ".join(parts)
