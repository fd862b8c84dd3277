"""spec.runtime.affinity: a typed subset of core/v1 Affinity (node affinity, pod affinity and
anti-affinity), with CEL rules for the operator/values checks core/v1 makes, so a bad term
is refused at admission with the field named rather than when the Deployment is applied.

Left out: NodeSelectorTerm.matchFields (only metadata.name, which pins a pod to one node)
and PodAffinityTerm.matchLabelKeys/mismatchLabelKeys (beta; they need feature gates).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints, model_validator

from .base import CamelModel
from .placement import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, keys_are_label_keys

LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=316, pattern=LABEL_KEY_PATTERN)]
NamespaceName = Annotated[str, StringConstraints(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]


class NodeOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class SetOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


def _values_rule(*, numeric: bool) -> list[tuple[str, str, str]]:
    """core/v1's checks of a requirement's values against its operator."""
    rules = [
        (
            "!(self.operator in ['In', 'NotIn']) || (has(self.values) && self.values.size() > 0)",
            "operator In and NotIn need values",
            ".values",
        ),
        (
            "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || self.values.size() == 0",
            "operator Exists and DoesNotExist take no values",
            ".values",
        ),
    ]
    if numeric:
        rules.append(
            (
                "!(self.operator in ['Gt', 'Lt']) || (has(self.values) && self.values.size() == 1 "
                "&& self.values[0].matches('^-?[0-9]{1,18}$'))",
                "operator Gt and Lt need exactly one integer value",
                ".values",
            )
        )
    return rules


def _check_values(operator: str, values: list[str], what: str) -> None:
    if operator in ("In", "NotIn") and not values:
        raise ValueError(f"{what}: operator In and NotIn need values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise ValueError(f"{what}: operator Exists and DoesNotExist take no values")
    if operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
        raise ValueError(f"{what}: operator Gt and Lt need exactly one integer value")


class NodeSelectorRequirement(CamelModel):
    """A node label and how its value must relate to the values given."""

    key: LabelKey
    """The node label's key."""
    operator: NodeOperator
    """In, NotIn, Exists, DoesNotExist, Gt or Lt (Gt and Lt compare one integer)."""
    values: list[LabelValue] | None = Field(default=None, max_length=32)
    """The values In/NotIn compare with, or the one integer of Gt/Lt."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = _values_rule(numeric=True)

    @model_validator(mode="after")
    def _operator_fits_values(self) -> NodeSelectorRequirement:
        _check_values(self.operator, self.values or [], f"node requirement {self.key}")
        return self


class NodeSelectorTerm(CamelModel):
    """Requirements that must all hold for a node."""

    match_expressions: list[NodeSelectorRequirement] = Field(min_length=1, max_length=8)
    """The requirements on the node's labels."""


class NodeSelector(CamelModel):
    """Terms of which at least one must hold."""

    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=8)
    """The terms, ORed."""


class PreferredSchedulingTerm(CamelModel):
    """A term the scheduler prefers, with its weight."""

    weight: int = Field(ge=1, le=100)
    """How much a node matching the term scores (1-100)."""
    preference: NodeSelectorTerm
    """The term."""


class NodeAffinity(CamelModel):
    """The nodes the serving pods must or should run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    """Nodes outside these terms never get a serving pod."""
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(
        default_factory=list, max_length=8
    )
    """Nodes the scheduler prefers, by weight."""


class LabelSelectorRequirement(CamelModel):
    """A pod label and how its value must relate to the values given."""

    key: LabelKey
    """The pod label's key."""
    operator: SetOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: list[LabelValue] | None = Field(default=None, max_length=32)
    """The values In/NotIn compare with."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = _values_rule(numeric=False)

    @model_validator(mode="after")
    def _operator_fits_values(self) -> LabelSelectorRequirement:
        _check_values(self.operator, self.values or [], f"label requirement {self.key}")
        return self


class LabelSelector(CamelModel):
    """A core/v1 label selector: every label and every expression must match."""

    match_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=16)
    """Labels the pods must carry, with these values."""
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=8)
    """Requirements on the pods' labels."""

    cel_rules: ClassVar[list[tuple[str, str, str]]] = [keys_are_label_keys("matchLabels")]

    @model_validator(mode="after")
    def _keys_are_label_keys(self) -> LabelSelector:
        if any(not re.match(LABEL_KEY_PATTERN, k) for k in self.match_labels):
            raise ValueError("labelSelector.matchLabels keys must be qualified names")
        return self


class PodAffinityTerm(CamelModel):
    """Pods (by labels, in some namespaces) the serving pods should be near or far from."""

    label_selector: LabelSelector | None = None
    """The pods; none selects no pods."""
    namespaces: list[NamespaceName] = Field(default_factory=list, max_length=16)
    """Their namespaces; with no namespaceSelector either, the resource's own."""
    namespace_selector: LabelSelector | None = None
    """Or namespaces by label (an empty selector: every namespace)."""
    topology_key: LabelKey
    """The node label whose value makes two pods "near" (kubernetes.io/hostname: the same node)."""


class WeightedPodAffinityTerm(CamelModel):
    """A pod affinity term the scheduler prefers, with its weight."""

    weight: int = Field(ge=1, le=100)
    """How much a node satisfying the term scores (1-100)."""
    pod_affinity_term: PodAffinityTerm
    """The term."""


class PodAffinity(CamelModel):
    """Pods the serving pods must or should be scheduled near (pod affinity) or away from
    (anti-affinity)."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=8
    )
    """Terms that must all hold."""
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=8
    )
    """Terms the scheduler prefers, by weight."""


class Affinity(CamelModel):
    """core/v1 Affinity of the serving pods."""

    node_affinity: NodeAffinity | None = None
    """The nodes they run on (a GPU type, say)."""
    pod_affinity: PodAffinity | None = None
    """Pods they run near."""
    pod_anti_affinity: PodAffinity | None = None
    """Pods they run away from (one serving pod per node, say)."""
