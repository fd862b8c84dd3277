"""Kubernetes resource quantities (``10Gi``, ``500M``, ``1e9``) as bytes."""

from __future__ import annotations

import re

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_SUFFIX = {
    "": 1,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def to_bytes(quantity: str) -> int:
    match = re.fullmatch(QUANTITY_PATTERN, quantity)
    if match is None:
        raise ValueError(f"{quantity!r} is not a quantity like 10Gi or 500M")
    number = quantity[: len(quantity) - len(match.group(2) or "")]
    return int(float(number) * _SUFFIX[match.group(2) or ""])
