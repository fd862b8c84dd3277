"""Where the serving pods run and as whom (spec.runtime): typed subsets of core/v1's
Toleration, TopologySpreadConstraint and EnvVar, and the label rules Kubernetes applies.

Typed rather than free-form, so the API server refuses at admission, naming the field,
what it would otherwise refuse only when the operator applied the Deployment: the schema
checks the shapes and CEL rules the cross-field constraints of core/v1's own validation.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field, model_validator

from .base import CamelModel

# Label keys (qualified names) and values as Kubernetes checks them. [.] rather than an
# escaped dot: the same text serves Python's re, the schema's pattern and CEL's matches().
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# What the operator puts on every serving pod: a user's value would break its selectors.
OWNED_PREFIX = "serving.modeldeploy.dev/"
OWNED_LABEL_KEYS = ("app.kubernetes.io/name", "app.kubernetes.io/managed-by")
OWNED_ENV_PREFIX = "MODELDEPLOY_"


def keys_are_label_keys(field: str) -> tuple[str, str, str]:
    """A CEL rule on a map's keys, for the object holding ``field``."""
    return (
        f"!has(self.{field}) || self.{field}.all(k, k.matches('{LABEL_KEY_PATTERN}'))",
        f"{field} keys must be qualified names: [DNS subdomain/]name, the name at most 63 of [A-Za-z0-9-_.]",
        f".{field}",
    )


class TolerationOperator(StrEnum):
    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(CamelModel):
    """A core/v1 Toleration: the serving pods may run on nodes with a matching taint."""

    key: str | None = Field(default=None, max_length=316, pattern=LABEL_KEY_PATTERN)
    """The taint's key; empty with operator Exists tolerates every taint."""
    operator: TolerationOperator | None = None
    """Exists (any value) or Equal (the value below; the default)."""
    value: str | None = Field(default=None, max_length=63, pattern=LABEL_VALUE_PATTERN)
    """The taint's value, with operator Equal."""
    effect: TaintEffect | None = None
    """The taint effect tolerated; empty tolerates every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0, le=2**31 - 1)  # 68 years
    """With effect NoExecute: how long the pod stays on a node after the taint appears."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
            "value must be empty when operator is Exists",
            ".value",
        ),
        (
            "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
            "an empty key needs operator Exists",
            ".key",
        ),
        (
            "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
            "tolerationSeconds needs effect NoExecute",
            ".tolerationSeconds",
        ),
    ]

    @model_validator(mode="after")
    def _as_core_v1_checks(self) -> Toleration:
        if self.operator is TolerationOperator.EXISTS and self.value:
            raise ValueError("toleration: value must be empty when operator is Exists")
        if not self.key and self.operator is not TolerationOperator.EXISTS:
            raise ValueError("toleration: an empty key needs operator Exists")
        if self.toleration_seconds is not None and self.effect is not TaintEffect.NO_EXECUTE:
            raise ValueError("toleration: tolerationSeconds needs effect NoExecute")
        return self


class WhenUnsatisfiable(StrEnum):
    DO_NOT_SCHEDULE = "DoNotSchedule"
    SCHEDULE_ANYWAY = "ScheduleAnyway"


class InclusionPolicy(StrEnum):
    HONOR = "Honor"
    IGNORE = "Ignore"


class TopologySpread(CamelModel):
    """A core/v1 TopologySpreadConstraint over the pods of this model version (the operator
    sets the labelSelector)."""

    max_skew: int = Field(ge=1, le=2**31 - 1)  # core/v1's int32
    """The most the number of pods may differ between two topology domains."""
    topology_key: str = Field(max_length=316, pattern=LABEL_KEY_PATTERN)
    """The node label whose values are the domains (topology.kubernetes.io/zone, say)."""
    when_unsatisfiable: WhenUnsatisfiable
    """DoNotSchedule (a hard rule) or ScheduleAnyway (a preference)."""
    min_domains: int | None = Field(default=None, ge=1, le=2**31 - 1)
    """With DoNotSchedule: the fewest eligible domains."""
    node_affinity_policy: InclusionPolicy | None = None
    """Whether the pods' node affinity and selector decide which nodes count."""
    node_taints_policy: InclusionPolicy | None = None
    """Whether nodes with taints the pods do not tolerate count."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.minDomains) || self.whenUnsatisfiable == 'DoNotSchedule'",
            "minDomains needs whenUnsatisfiable DoNotSchedule",
            ".minDomains",
        )
    ]

    @model_validator(mode="after")
    def _min_domains_is_hard(self) -> TopologySpread:
        if self.min_domains is not None and self.when_unsatisfiable is not WhenUnsatisfiable.DO_NOT_SCHEDULE:
            raise ValueError("topologySpreadConstraints: minDomains needs whenUnsatisfiable DoNotSchedule")
        return self


class KeyRef(CamelModel):
    """A key of a Secret or ConfigMap in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """The object's name."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """The key."""
    optional: bool | None = None
    """Start the pod even when the object or key is missing."""


class PodField(StrEnum):
    """Fields of the pod an environment variable can carry (the downward API)."""

    NAME = "metadata.name"
    NAMESPACE = "metadata.namespace"
    UID = "metadata.uid"
    NODE_NAME = "spec.nodeName"
    SERVICE_ACCOUNT = "spec.serviceAccountName"
    HOST_IP = "status.hostIP"
    POD_IP = "status.podIP"


class FieldRef(CamelModel):
    """A field of the pod."""

    field_path: PodField
    """The field."""


class EnvSource(CamelModel):
    """Where a variable's value comes from: exactly one of the three."""

    secret_key_ref: KeyRef | None = None
    """A Secret's key."""
    config_map_key_ref: KeyRef | None = None
    """A ConfigMap's key."""
    field_ref: FieldRef | None = None
    """A field of the pod."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef)]"
            ".filter(x, x).size() == 1",
            "valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef",
            "",
        )
    ]

    @model_validator(mode="after")
    def _exactly_one(self) -> EnvSource:
        if sum(x is not None for x in (self.secret_key_ref, self.config_map_key_ref, self.field_ref)) != 1:
            raise ValueError("env valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef")
        return self


class EnvVar(CamelModel):
    """A core/v1 EnvVar of the serving container."""

    name: str = Field(min_length=1, max_length=256, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    """The variable's name; names starting MODELDEPLOY_ are the operator's."""
    value: str | None = Field(default=None, max_length=32768)
    """Its value."""
    value_from: EnvSource | None = None
    """Or where its value comes from."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [
        (
            "!has(self.valueFrom) || !has(self.value) || self.value == ''",
            "value and valueFrom are exclusive",
            ".valueFrom",
        )
    ]

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value_from is not None and self.value:
            raise ValueError(f"env {self.name}: value and valueFrom are exclusive")
        return self
