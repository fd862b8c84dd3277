"""Golden requests: parsing the user's file, comparing answers, and warm-up bodies. Pure.

The file (a ConfigMap key) holds TF Serving REST predict bodies, one JSON object a line
(``instances`` or ``inputs``, optionally ``signature_name``), each optionally with
``expected``: what the answer's ``predictions`` (row form) or ``outputs`` (columnar
form) must be. Numbers match within a tolerance; everything else must be equal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..api.spec import Tolerance
from .bounded_json import loads_bounded
from .signature import DEFAULT_SIGNATURE, Signature, Signatures

# A golden file is a handful of requests, not a dataset: bounded so a check stays short.
MAX_REQUESTS = 1000
SHOWN_CHARS = 120  # of a value in a mismatch message
# A synthetic warm-up request is built in the operator's memory (Python lists, then JSON):
# a model's metadata can declare any size, so what exceeds these is not built at all.
MAX_WARMUP_ELEMENTS = 1 << 20
MAX_WARMUP_BYTES = 4 << 20


class GoldenFileError(ValueError):
    """The golden file cannot be used; str() names the line."""


class WarmupTooLargeError(ValueError):
    """The model's inputs are too large for a synthetic warm-up request; str() says how large."""


@dataclass(frozen=True)
class GoldenRequest:
    line: int  # 1-based line of the file, for messages
    body: bytes  # what is POSTed: the line without ``expected``
    expected: Any | None


def parse_golden(text: str, where: str) -> list[GoldenRequest]:
    """The requests of a golden file; ``where`` names it in errors (ConfigMap and key)."""
    requests: list[GoldenRequest] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = loads_bounded(raw)
        except ValueError as exc:
            raise GoldenFileError(f"{where} line {number} is not JSON: {exc}") from None
        if not isinstance(line, dict):
            raise GoldenFileError(f"{where} line {number} is not a JSON object")
        if "instances" not in line and "inputs" not in line:
            raise GoldenFileError(f"{where} line {number} has neither 'instances' nor 'inputs'")
        expected = line.pop("expected", None)
        requests.append(GoldenRequest(number, json.dumps(line).encode(), expected))
        if len(requests) > MAX_REQUESTS:
            raise GoldenFileError(f"{where} holds more than {MAX_REQUESTS} requests")
    if not requests:
        raise GoldenFileError(f"{where} holds no requests")
    return requests


def answer_of(reply: Any) -> Any:
    """The answer in a predict reply: ``predictions`` (row form) or ``outputs`` (columnar)."""
    if isinstance(reply, dict):
        if "predictions" in reply:
            return reply["predictions"]
        if "outputs" in reply:
            return reply["outputs"]
    raise ValueError("the reply has neither 'predictions' nor 'outputs'")


def mismatch(expected: Any, got: Any, tolerance: Tolerance, path: str = "") -> str | None:
    """Where ``got`` differs from ``expected`` beyond ``tolerance``, or None.

    Only what ``expected`` names is compared: an output added by a new version does not
    make old expectations fail.
    """
    if _number(expected) and _number(got):
        if math.isclose(
            got, expected, rel_tol=0.0, abs_tol=tolerance.absolute + tolerance.relative * abs(expected)
        ):
            return None
        return _shown(path, expected, got)
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return _shown(path, expected, got)
        for name in expected:
            if name not in got:
                return f"{path or 'answer'}: output {name!r} missing"
            found = mismatch(expected[name], got[name], tolerance, f"{path}.{name}" if path else name)
            if found is not None:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return _shown(path, expected, got)
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            found = mismatch(want, have, tolerance, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if expected == got else _shown(path, expected, got)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(path: str, expected: Any, got: Any) -> str:
    def text(value: Any) -> str:
        dumped = json.dumps(value)
        return dumped if len(dumped) <= SHOWN_CHARS else dumped[: SHOWN_CHARS - 3] + "..."

    return f"{path or 'answer'}: expected {text(expected)}, got {text(got)}"


_ZEROS = {"DT_STRING": "", "DT_BOOL": False}


def warmup_bodies(golden: list[GoldenRequest] | None, signatures: Signatures, count: int) -> list[bytes]:
    """``count`` request bodies: the golden ones in turn, else one built from the default
    signature's inputs (zeros of each dtype, unknown sizes taken as 1). Raises
    WarmupTooLargeError, before building anything, for inputs over the warm-up bounds."""
    if count <= 0:
        return []
    if golden:
        return [golden[i % len(golden)].body for i in range(count)]
    signature = signatures.get(DEFAULT_SIGNATURE) or next(iter(signatures.values()), None)
    if signature is None or not signature.inputs:
        return []
    _check_warmup_size(signature)
    inputs = {
        alias: _filled((1,) if tensor.shape is None else tensor.shape, _ZEROS.get(tensor.dtype, 0))
        for alias, tensor in signature.inputs.items()
    }
    body = json.dumps({"inputs": inputs}).encode()
    return [body] * count


def _check_warmup_size(signature: Signature) -> None:
    """Refuses inputs whose zeros would exceed the warm-up bounds, counted from the shapes alone."""
    elements = 0
    size = 0
    for tensor in signature.inputs.values():
        count = math.prod(d if d > 0 else 1 for d in tensor.shape or (1,))
        elements += count
        size += count * (len(json.dumps(_ZEROS.get(tensor.dtype, 0))) + 2)  # the value and ", "
        if elements > MAX_WARMUP_ELEMENTS or size > MAX_WARMUP_BYTES:
            raise WarmupTooLargeError(
                f"its inputs are too large for synthetic warm-up (more than {MAX_WARMUP_ELEMENTS} elements "
                f"or {MAX_WARMUP_BYTES >> 20} MiB): no warm-up requests sent"
            )


def _filled(shape: tuple[int, ...], value: Any) -> Any:
    if not shape:
        return value  # a scalar input
    size = shape[0] if shape[0] > 0 else 1
    return [_filled(shape[1:], value) for _ in range(size)]
