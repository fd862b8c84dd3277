"""Model signatures from TF Serving's metadata, and what changed between two versions. Pure.

A client built against the serving version sends its inputs by name, with their dtype
and shape, and reads outputs by name. ``Compatible`` keeps every such client working:
each input the serving version accepts is still there with the same dtype and a shape
that accepts the same tensors, no input is added (every signature input is required),
and each output it returned is still returned with the same dtype. ``Identical`` asks
for exactly the same signatures. The differences are spelled out for status and events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api.spec import SignaturePolicy

DEFAULT_SIGNATURE = "serving_default"
# TF's own entry for variable initialisation: not something a client calls.
INTERNAL_SIGNATURES = frozenset({"__saved_model_init_op"})
UNKNOWN_RANK: tuple[int, ...] | None = None


class MetadataError(ValueError):
    """The metadata reply is not TF Serving's GetModelMetadata; str() is one line."""


@dataclass(frozen=True)
class Tensor:
    dtype: str
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown size of a dimension


@dataclass(frozen=True)
class Signature:
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]


Signatures = dict[str, Signature]


def parse_metadata(body: Any) -> Signatures:
    """The signatures in a REST ``/v1/models/{m}/versions/{v}/metadata`` reply."""
    try:
        defs = body["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise MetadataError("no metadata.signature_def.signature_def in the reply") from None
    if not isinstance(defs, dict):
        raise MetadataError("signature_def is not an object")
    return {
        name: Signature(_tensors(sig, "inputs", name), _tensors(sig, "outputs", name))
        for name, sig in defs.items()
        if name not in INTERNAL_SIGNATURES
    }


def _tensors(sig: Any, which: str, signature: str) -> dict[str, Tensor]:
    raw = sig.get(which) if isinstance(sig, dict) else None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise MetadataError(f"signature {signature!r}: {which} is not an object")
    return {alias: _tensor(info, f"{signature}.{which}.{alias}") for alias, info in raw.items()}


def _tensor(info: Any, where: str) -> Tensor:
    if not isinstance(info, dict):
        raise MetadataError(f"{where} is not an object")
    shape_info = info.get("tensor_shape") or {}
    if not isinstance(shape_info, dict):
        raise MetadataError(f"{where}.tensor_shape is not an object")
    shape: tuple[int, ...] | None
    if shape_info.get("unknown_rank"):
        shape = UNKNOWN_RANK
    else:
        try:
            shape = tuple(int(d.get("size", -1)) for d in shape_info.get("dim") or [])
        except (AttributeError, TypeError, ValueError):
            raise MetadataError(f"{where}.tensor_shape.dim holds a size that is not a number") from None
    return Tensor(str(info.get("dtype") or "DT_INVALID"), shape)


def differences(serving: Signatures, candidate: Signatures, policy: SignaturePolicy) -> list[str]:
    """What a client of ``serving`` would find changed in ``candidate``; [] when it passes."""
    if policy is SignaturePolicy.IGNORE:
        return []
    identical = policy is SignaturePolicy.IDENTICAL
    diffs: list[str] = []
    for name in sorted(serving):
        prefix = "" if name == DEFAULT_SIGNATURE else f"signature {name!r}: "
        if name not in candidate:
            diffs.append(f"signature {name!r} removed")
            continue
        old, new = serving[name], candidate[name]
        diffs += [prefix + d for d in _side("input", old.inputs, new.inputs, identical, added_breaks=True)]
        diffs += [
            prefix + d for d in _side("output", old.outputs, new.outputs, identical, added_breaks=False)
        ]
    if identical:
        diffs += [f"signature {name!r} added" for name in sorted(set(candidate) - set(serving))]
    return diffs


def _side(
    kind: str, old: dict[str, Tensor], new: dict[str, Tensor], identical: bool, added_breaks: bool
) -> list[str]:
    diffs: list[str] = []
    for alias in sorted(old):
        if alias not in new:
            diffs.append(f"{kind} {alias!r} removed")
            continue
        was, now = old[alias], new[alias]
        if was.dtype != now.dtype:
            diffs.append(f"{kind} {alias!r}: {was.dtype} -> {now.dtype}")
        if (was.shape != now.shape) if identical else not _shapes_compatible(was.shape, now.shape):
            diffs.append(f"{kind} {alias!r}: shape {_shape_text(was.shape)} -> {_shape_text(now.shape)}")
    if identical or added_breaks:
        diffs += [f"{kind} {alias!r} added" for alias in sorted(set(new) - set(old))]
    return diffs


def _shapes_compatible(old: tuple[int, ...] | None, new: tuple[int, ...] | None) -> bool:
    """Whether every tensor ``old`` admits is admitted by ``new`` (-1 admits any size)."""
    if new is None:
        return True
    if old is None:
        return False  # anything went before; now only some ranks do
    return len(old) == len(new) and all(n == -1 or o == n for o, n in zip(old, new, strict=True))


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "unknown rank" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"
