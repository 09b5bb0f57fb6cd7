"""The `decimal-string` logical type: decimal.Decimal in Python, a plain decimal string on the wire.

Registered into fastavro's logical-type tables on import, so fastavro converts while it
encodes and decodes (no second pass over the record). Other Avro readers ignore the unknown
logical type and see the underlying string. See docs/wire.md for why not Avro `decimal`.
"""

from __future__ import annotations

import re
from decimal import Decimal

import fastavro.read
import fastavro.write

LOGICAL_TYPE = "decimal-string"
SCHEMA = {"type": "string", "logicalType": LOGICAL_TYPE}

# What the encoder writes and the decoder accepts: no exponent, no "+", no spaces, no NaN.
_PLAIN = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


class _NotADecimal:
    """Returned for a non-Decimal so fastavro sees a non-string and rejects the field.

    Raising here instead would break fastavro's union branch selection, which calls this
    writer while it tries each branch.
    """

    __slots__ = ()


NOT_A_DECIMAL = _NotADecimal()


def to_wire(value: object, *_schema: object) -> object:
    """Decimal -> plain string keeping its exponent ("149.80" stays "149.80")."""
    if isinstance(value, Decimal) and value.is_finite():
        text = str(value)
        # str() switches to exponent form for tiny or positive-exponent values; spell them out.
        return text if "E" not in text else format(value, "f")
    return NOT_A_DECIMAL


def from_wire(text: str, *_schemas: object) -> Decimal:
    """Plain decimal string -> Decimal, exactly (Decimal(str) ignores the context precision)."""
    if _PLAIN.fullmatch(text) is None:
        raise ValueError(f"not a plain decimal string: {text[:40]!r}")
    return Decimal(text)


def is_wire_decimal(value: object) -> bool:
    """What to_wire accepts: a finite decimal.Decimal."""
    return isinstance(value, Decimal) and value.is_finite()


_KEY = f"string-{LOGICAL_TYPE}"  # fastavro keys logical types as "<type>-<logicalType>"
fastavro.write.LOGICAL_WRITERS[_KEY] = to_wire
fastavro.read.LOGICAL_READERS[_KEY] = from_wire
