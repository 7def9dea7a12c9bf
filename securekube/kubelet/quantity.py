"""Kubernetes resource quantities ("128Mi", "500m", "1.5", "1e3") as exact decimals.

The grammar is upstream's (k8s.io/apimachinery resource.Quantity): a signed decimal number
followed by a binary-SI suffix (Ki..Ei), a decimal-SI suffix (n, u, m, "", k, M..E) or a decimal
exponent (e3/E3). Anything else is rejected: a limit we cannot read must not be silently dropped.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[a-zA-Z]*)$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity (in base units: bytes, cores)."""
    if isinstance(value, bool):
        raise QuantityError(f"quantities must be strings or numbers, not {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        raise QuantityError(f"not a valid quantity: {value!r}") from None
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix in _DECIMAL:
        return base * _DECIMAL[suffix]
    if suffix[:1] in ("e", "E"):
        return base * Decimal(10) ** int(suffix[1:])
    raise QuantityError(f"unknown quantity suffix {suffix!r} in {value!r}")


def to_bytes(value: str | int | float) -> int:
    """A memory quantity in whole bytes, rounded up as upstream's Value() does."""
    return math.ceil(parse_quantity(value))


def to_millicores(value: str | int | float) -> int:
    """A CPU quantity in millicores, rounded up as upstream's MilliValue() does."""
    return math.ceil(parse_quantity(value) * 1000)
