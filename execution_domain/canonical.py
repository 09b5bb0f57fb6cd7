"""Canonical JSON, sha256 helpers and the primitive forms of decimals and timestamps.

Canonical JSON is what every hash in this service is computed over:
sorted keys, separators (",", ":"), ``ensure_ascii=False`` encoded as UTF-8, decimals as
normalised strings (no exponent, no trailing zeros, no negative zero), timestamps as UTC
ISO-8601 with a ``Z`` suffix. Floats are refused: they cannot represent money exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

__all__ = [
    "Primitive",
    "canonical_json",
    "canonical_sha256",
    "decimal_from_str",
    "decimal_to_str",
    "format_timestamp",
    "parse_timestamp",
    "sha256_hex",
    "to_primitive",
]

Primitive = None | bool | int | str | list["Primitive"] | dict[str, "Primitive"]

# Plain decimal notation only: what decimal_to_str emits. No exponents, no "1_000", no spaces.
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def decimal_to_str(value: Decimal) -> str:
    """Normalised text of a finite decimal: ``Decimal("1500.00")`` -> ``"1500"``, ``"1E+3"`` -> ``"1000"``."""
    if not value.is_finite():
        raise ValueError(f"decimal must be finite, got {value!r}")
    text = format(value, "f")  # 'f' is exact: it never rounds and never uses an exponent
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        return "0"
    return text


def decimal_from_str(text: str) -> Decimal:
    """Parse plain decimal notation (``"-12.50"``); anything else raises ValueError."""
    if not isinstance(text, str) or _DECIMAL_TEXT.fullmatch(text) is None:
        raise ValueError(f"expected a decimal string such as '10' or '149.80', got {text!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise ValueError(f"invalid decimal {text!r}") from exc


def format_timestamp(value: datetime) -> str:
    """UTC ISO-8601 with ``Z``; microseconds only when non-zero. Naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware, got {value!r}")
    # isoformat leaves out zero microseconds as this format does, and is ~8x cheaper than strftime.
    return value.astimezone(UTC).isoformat()[:-6] + "Z"  # "+00:00" -> "Z"


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp that carries an offset (``Z`` or ``+hh:mm``) into UTC."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 timestamp string, got {text!r}")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp must carry a UTC offset, got {text!r}")
    return parsed.astimezone(UTC)


def to_primitive(value: Any) -> Primitive:
    """Convert nested values to JSON primitives; objects with ``to_primitive()`` convert themselves."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return decimal_to_str(value)
    if isinstance(value, Enum):
        return to_primitive(value.value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, float):
        raise TypeError("floats are not allowed in canonical data; use Decimal")
    if isinstance(value, Mapping):
        out: dict[str, Primitive] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, got {key!r}")
            out[key] = to_primitive(item)
        return out
    if isinstance(value, (list, tuple)):
        return [to_primitive(item) for item in value]
    converter = getattr(value, "to_primitive", None)
    if callable(converter):
        converted: Primitive = converter()
        return converted
    raise TypeError(f"cannot convert {type(value).__name__} to a primitive")


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (converted with :func:`to_primitive` first)."""
    return json.dumps(
        to_primitive(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def sha256_hex(data: str) -> str:
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def canonical_sha256(value: Any) -> str:
    """``"sha256:" + hex(sha256(canonical_json(value)))``, the form every lineage hash takes."""
    return "sha256:" + sha256_hex(canonical_json(value))
