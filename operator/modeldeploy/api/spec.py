"""Pydantic models of the ModelDeployment spec: the v1alpha1 contract.

The CRD's openAPIV3Schema is generated from these classes (see ``crdgen``), so a
field, default, bound or enum added here reaches the API server's validation.
Cross-field rules the schema cannot express are CEL rules attached with
``cel_rules`` and are also enforced here, so unit tests and the operator agree
with the API server.
"""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .base import CamelModel
from .quantity import QUANTITY_PATTERN
from .times import DURATION_PATTERN, parse_duration

# TF Serving pinned to a release tag; never `latest`, so a node pull is reproducible.
DEFAULT_SERVING_IMAGE = "tensorflow/serving:2.18.0"
STORAGE_URI_PATTERN = r"^(s3|gs|https?|pvc|file)://.+"


# Kubernetes object names (a Secret's): an RFC 1123 subdomain.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# A container image: Kubernetes refuses leading or trailing white space (Go's unicode.IsSpace).
IMAGE_PATTERN = r"^[^\t\n\v\f\r \x{85}\p{Z}](.*[^\t\n\v\f\r \x{85}\p{Z}])?$"


class ModelSpec(CamelModel):
    name: str | None = Field(
        default=None,
        description="TF Serving model name; defaults to metadata.name.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
    )
    storage_uri: str = Field(
        description="Base path holding numeric version folders: s3://, gs://, http(s)://, pvc://, file://.",
        pattern=STORAGE_URI_PATTERN,
        max_length=2048,
    )
    version: int = Field(ge=1, description="The model version this resource must serve.")
    storage_secret_name: str | None = Field(
        default=None,
        description="Secret with credentials for the model fetch.",
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
    )


class Batching(CamelModel):
    max_batch_size: int = Field(default=32, ge=1)
    batch_timeout_micros: int = Field(default=1000, ge=0)
    max_enqueued_batches: int = Field(default=100, ge=1)
    num_batch_threads: int = Field(default=4, ge=1)


class RuntimeSpec(CamelModel):
    image: str = Field(default=DEFAULT_SERVING_IMAGE, min_length=1, max_length=1024, pattern=IMAGE_PATTERN)
    resources: dict[str, Any] = Field(
        default_factory=dict, description="core/v1 ResourceRequirements (GPUs included)."
    )
    batching: Batching | None = None
    args: list[str] = Field(default_factory=list, description="Extra tensorflow_model_server flags.")
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


class Autoscaling(CamelModel):
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu_utilization_percentage: int = Field(default=70, ge=1, le=100)

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


class CanaryStep(CamelModel):
    weight: int = Field(ge=1, le=99, description="Percent of traffic sent to the canary.")
    pause: str = Field(
        default="60s", pattern=DURATION_PATTERN, max_length=32, description="How long to hold."
    )


class Threshold(CamelModel):
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)


class PrometheusSource(CamelModel):
    address: str = Field(
        # Scheme, host and an optional path prefix: a query or fragment would cancel the
        # API path the operator appends.
        pattern=r"^https?://[^/?#\s]+(/[^?#\s]*)?$",
        max_length=512,
        description="Prometheus base URL: http(s)://host[:port][/path prefix], no query or fragment.",
    )
    version_label: str = Field(
        default="version",
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label carrying the pod's serving.modeldeploy.dev/version.",
    )


class Analysis(CamelModel):
    interval: str = Field(default="30s", pattern=DURATION_PATTERN, max_length=32)
    failure_limit: int = Field(default=2, ge=1)
    min_requests: int = Field(default=100, ge=0)
    success_rate: Threshold | None = None
    latency_p99_ms: Threshold | None = Field(default=None, alias="latencyP99Ms")
    prometheus: PrometheusSource | None = None


class SignaturePolicy(StrEnum):
    COMPATIBLE = "Compatible"
    IDENTICAL = "Identical"
    IGNORE = "Ignore"


class CompareTo(StrEnum):
    EXPECTED = "Expected"
    STABLE = "Stable"


class ConfigMapKeyRef(CamelModel):
    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class Tolerance(CamelModel):
    """Two numbers match when |got - expected| <= absolute + relative * |expected|."""

    absolute: float = Field(default=1e-6, ge=0)
    relative: float = Field(default=1e-4, ge=0)


class GoldenRequests(CamelModel):
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


class RolloutSpec(CamelModel):
    strategy: Strategy = Strategy.CANARY
    paused: bool = False
    steps: list[CanaryStep] = Field(default_factory=list, max_length=20)
    analysis: Analysis | None = None
    pre_traffic: PreTraffic | None = None
    progress_deadline_seconds: int = Field(default=600, ge=10, le=604800)
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
            "!has(self.steps) || self.steps.all(s, !has(s.pause) || "
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
        if any(parse_duration(step.pause) >= deadline for step in self.steps):
            raise ValueError("every step's pause must be shorter than progressDeadlineSeconds")
        if self.analysis is not None and parse_duration(self.analysis.interval) >= deadline:
            raise ValueError("analysis.interval must be shorter than progressDeadlineSeconds")
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
    kind: str = Field(
        "Gateway", min_length=1, max_length=63, pattern=r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
    )
    namespace: str | None = Field(
        None, min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    )
    name: str = Field(min_length=1, max_length=253)
    section_name: str | None = Field(None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    port: int | None = Field(None, ge=1, le=65535)


class GatewaySpec(CamelModel):
    parent_refs: list[ParentRef] = Field(default_factory=list, max_length=16)
    hostnames: list[
        Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]
    ] = Field(default_factory=list, max_length=16)

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
    router: Router = Router.SERVICE
    gateway: GatewaySpec | None = None

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
    model: ModelSpec
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, json_schema_extra={"default": {}})
    replicas: int | None = Field(
        default=None, ge=0, le=1000, description="Fixed replica count; defaults to 1 without autoscaling."
    )
    autoscaling: Autoscaling | None = None
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, json_schema_extra={"default": {}})
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, json_schema_extra={"default": {}})

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
