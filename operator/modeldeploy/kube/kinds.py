"""The shape of a row in a kind table: where a kind lives in the API and which of its
objects a list or watch asks for. The concrete table belongs to whoever uses this layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core API
    version: str
    plural: str
    # A label selector ("key=value,..."): lists and watches ask only for the objects that
    # carry these labels (the API server filters); "" asks for every object.
    selector: str = ""

    @property
    def api_prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.api_prefix}/namespaces/{namespace}/{self.plural}"
        if name:
            path += f"/{name}"
        return f"{path}/{subresource}" if subresource else path
