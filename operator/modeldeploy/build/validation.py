"""What the CRD's schema cannot refuse but would break the children built from a spec."""

from __future__ import annotations

from ..api.spec import ModelDeploymentSpec
from .tfconfig import reserved_flags_in


def spec_problem(spec: ModelDeploymentSpec) -> str | None:
    """A message naming the field, or None when the children can be built as asked."""
    reserved = reserved_flags_in(spec.runtime.args)
    if reserved:
        return (
            f"spec.runtime.args: {', '.join(reserved)} is set by the operator and may not be "
            "overridden; remove it"
        )
    unknown = set(spec.runtime.resources) - {"limits", "requests", "claims"}
    if unknown:
        return f"spec.runtime.resources: unknown key(s) {sorted(unknown)}; use limits and requests"
    return None
