"""What the CRD's schema cannot refuse but would break the children built from a spec."""

from __future__ import annotations

import re
from typing import Any

from ..api.quantity import parse_quantity
from ..api.spec import ModelDeploymentSpec
from .tfconfig import reserved_flags_in

STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
HUGEPAGES = re.compile(r"hugepages-[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
# An extended resource (a GPU): a qualified name with a domain that is not Kubernetes' own.
EXTENDED = re.compile(
    r"(?P<domain>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
)


def spec_problem(spec: ModelDeploymentSpec) -> str | None:
    """A message naming the field, or None when the children can be built as asked."""
    reserved = reserved_flags_in(spec.runtime.args)
    if reserved:
        return (
            f"spec.runtime.args: {', '.join(reserved)} is set by the operator and may not be "
            "overridden; remove it"
        )
    return resources_problem(spec.runtime.resources)


def resources_problem(resources: dict[str, Any]) -> str | None:
    """What the API server would refuse in a container's resources, as it would say it:
    unknown keys and names, bad quantities, requests above limits, extended resources
    (GPUs) and huge pages that are not whole or not requested exactly as limited."""
    where = "spec.runtime.resources"
    unknown = set(resources) - {"limits", "requests"}
    if unknown:
        return f"{where}: unknown key(s) {sorted(unknown)}; use limits and requests"
    amounts: dict[str, dict[str, Any]] = {}
    for key in ("requests", "limits"):
        given = resources.get(key)
        given = {} if given is None else given
        if not isinstance(given, dict):
            return f"{where}.{key}: must map resource names to quantities"
        amounts[key] = {}
        for name, value in given.items():
            problem = _name_problem(str(name))
            if problem:
                return f"{where}.{key}[{name}]: {problem}"
            try:
                amounts[key][name] = parse_quantity(value)
            except ValueError as exc:
                return f"{where}.{key}[{name}]: {exc}"
            if amounts[key][name] < 0:
                return f"{where}.{key}[{name}]: must not be negative"
    requests, limits = amounts["requests"], amounts["limits"]
    for name, requested in requests.items():
        exact = name not in STANDARD_RESOURCES
        if exact and requested != requested.to_integral_value() and not HUGEPAGES.fullmatch(name):
            return f"{where}.requests[{name}]: must be a whole number"
        if exact and limits.get(name) != requested:
            return f"{where}.limits[{name}]: must equal requests[{name}] (it cannot be overcommitted)"
        if name in limits and requested > limits[name]:
            return f"{where}.requests[{name}]: must be less than or equal to limits[{name}]"
    for name, limit in limits.items():
        if (
            name not in STANDARD_RESOURCES
            and limit != limit.to_integral_value()
            and not HUGEPAGES.fullmatch(name)
        ):
            return f"{where}.limits[{name}]: must be a whole number"
    hugepages = any(HUGEPAGES.fullmatch(n) for n in (*requests, *limits))
    if hugepages and not {"cpu", "memory"} & {*requests, *limits}:
        return f"{where}: huge pages need a cpu or memory request or limit beside them"
    return None


def _name_problem(name: str) -> str | None:
    if name in STANDARD_RESOURCES or HUGEPAGES.fullmatch(name):
        return None
    extended = EXTENDED.fullmatch(name)
    if extended is None or len(name) > 253:
        return "not a resource name: cpu, memory, ephemeral-storage, hugepages-<size> or a domain/name"
    domain = extended.group("domain")
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io") or name.startswith("requests."):
        return "not a resource name a container can request (kubernetes.io is Kubernetes' own domain)"
    return None
