"""The base of every contract model: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields refused."""

    # use_attribute_docstrings: a field's docstring is its description in the CRD, which is
    # what `kubectl explain modeldeployment.spec...` prints.
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )
    # CEL rules (rule, message, fieldPath) placed on this object's schema.
    cel_rules: ClassVar[list[tuple[str, str, str]]] = []
