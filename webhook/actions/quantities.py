"""Kubernetes resource quantities as plain numbers, so that "512Mi" > "0.5Gi" can be compared."""

import decimal
import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 10**-9, "u": 10**-6, "m": 10**-3, "": 1, "k": 10**3, "M": 10**6,
            "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(value: object) -> float | None:
    """Return the quantity as a float (cores for cpu, bytes for memory), or None if unparseable.

    Unparseable values are not an error here: the API server validates quantities, and a value
    we cannot read simply does not take part in direction detection.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        base = decimal.Decimal(number)
    except decimal.InvalidOperation:
        return None
    suffix = suffix or ""
    factor = _BINARY.get(suffix) or _DECIMAL[suffix]
    return float(base * decimal.Decimal(factor))
