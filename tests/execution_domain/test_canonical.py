from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execution_domain.canonical import (
    canonical_json,
    canonical_sha256,
    decimal_from_str,
    decimal_to_str,
    format_timestamp,
    parse_timestamp,
    to_primitive,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1500.00", "1500"),
        ("149.80", "149.8"),
        ("1E+3", "1000"),
        ("0.000", "0"),
        ("-0.0", "0"),
        ("-12.50", "-12.5"),
        ("100", "100"),
        ("0.0001", "0.0001"),
        ("1.23E-7", "0.000000123"),
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_decimal_to_str_has_no_exponent_no_trailing_zeros_no_negative_zero(value: str, text: str) -> None:
    assert decimal_to_str(Decimal(value)) == text


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_decimal_to_str_refuses_non_finite(bad: Decimal) -> None:
    with pytest.raises(ValueError):
        decimal_to_str(bad)


@pytest.mark.parametrize("bad", ["1e3", " 1", "1_000", "", "NaN", "1.", ".5", "+1", "0x10", 10])
def test_decimal_from_str_accepts_plain_notation_only(bad: object) -> None:
    with pytest.raises(ValueError):
        decimal_from_str(bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_decimal_text_round_trips_to_an_equal_value(value: Decimal) -> None:
    assert decimal_from_str(decimal_to_str(value)) == value


def test_timestamps_are_utc_with_z_and_microseconds_only_when_present() -> None:
    assert format_timestamp(datetime(2026, 2, 18, 10, 0, tzinfo=UTC)) == "2026-02-18T10:00:00Z"
    plus8 = datetime(2026, 2, 18, 18, 0, 0, 250, tzinfo=timezone(timedelta(hours=8)))
    assert format_timestamp(plus8) == "2026-02-18T10:00:00.000250Z"


def test_naive_timestamps_are_refused_both_ways() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 2, 18, 10, 0))
    with pytest.raises(ValueError):
        parse_timestamp("2026-02-18T10:00:00")


def test_parse_timestamp_normalises_offsets_to_utc() -> None:
    assert parse_timestamp("2026-02-18T18:00:00+08:00") == datetime(2026, 2, 18, 10, tzinfo=UTC)
    assert parse_timestamp("2026-02-18T10:00:00Z").tzinfo is UTC


def test_canonical_json_sorts_keys_and_drops_insignificant_whitespace() -> None:
    text = canonical_json({"b": [Decimal("1.50"), True, None], "a": {"z": 1, "y": "é"}})
    assert text == '{"a":{"y":"é","z":1},"b":["1.5",true,null]}'


def test_canonical_json_refuses_floats() -> None:
    with pytest.raises(TypeError):
        canonical_json({"price": 1.5})


def test_canonical_sha256_is_prefixed_hex_and_ignores_key_order() -> None:
    first = canonical_sha256({"a": 1, "b": Decimal("2.0")})
    second = canonical_sha256(json.loads('{"b": "2", "a": 1}'))
    assert first == second
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64


def test_to_primitive_uses_objects_own_to_primitive() -> None:
    class Thing:
        def to_primitive(self) -> dict[str, str]:
            return {"thing": "yes"}

    assert to_primitive([Thing(), (1, 2)]) == [{"thing": "yes"}, [1, 2]]
