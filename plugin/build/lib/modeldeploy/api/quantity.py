"""Kubernetes resource quantities (``10Gi``, ``500M``, ``100m``, ``1e9``): as bytes, or as exact numbers."""

from __future__ import annotations

import re
from decimal import Decimal

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


# The API server's full grammar (resource.Quantity): signs, milli and smaller, exponents.
ANY_QUANTITY = re.compile(
    r"(?P<number>[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
# The API server keeps a quantity in 64 bits.
QUANTITY_LIMIT = Decimal(2**63 - 1)
_DECIMAL_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3")}


def parse_quantity(value: object) -> Decimal:
    """A quantity as the API server reads it (a number, or a string like ``100m``), exactly."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} is not a quantity")
    match = ANY_QUANTITY.fullmatch(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a quantity like 500m, 2Gi or 1")
    suffix = match.group("suffix") or ""
    try:
        number = Decimal(match.group("number"))
        if suffix[:1] in ("e", "E"):
            exact = number * (Decimal(10) ** int(suffix[1:]))
        else:
            exact = number * _DECIMAL_SUFFIX.get(suffix, Decimal(_SUFFIX.get(suffix, 1)))
    except ArithmeticError:  # decimal's overflow and invalid-operation signals
        exact = QUANTITY_LIMIT + 1
    if abs(exact) > QUANTITY_LIMIT:
        raise ValueError(f"{value!r} is a quantity too large for the API server")
    return exact
