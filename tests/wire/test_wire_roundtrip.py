"""Every schema round-trips realistic records exactly, in Avro single-object encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wire import decimals, serde
from wire.topics import TOPICS

UTC = UTC


def assert_identical(decoded: Any, original: Any, path: str = "") -> None:
    """Equal, and decimals keep their exact digits ("149.80" does not come back as "149.8")."""
    if isinstance(original, dict):
        assert isinstance(decoded, dict) and decoded.keys() == original.keys(), path
        for key in original:
            assert_identical(decoded[key], original[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(decoded, list) and len(decoded) == len(original), path
        for i, (d, o) in enumerate(zip(decoded, original, strict=True)):
            assert_identical(d, o, f"{path}[{i}]")
    elif isinstance(original, Decimal):
        assert isinstance(decoded, Decimal) and str(decoded) == str(original), path
    else:
        assert type(decoded) is type(original) and decoded == original, path


def roundtrip(name: str, record: dict[str, Any]) -> dict[str, Any]:
    return serde.decode(name, serde.encode(name, record), topic="t", partition=0, offset=0)


def test_every_sample_round_trips_exactly(sample) -> None:
    name, record = sample
    assert_identical(roundtrip(name, record), record)


def test_samples_cover_every_topic_schema(samples_by_schema) -> None:
    assert set(samples_by_schema) == {t.value_schema for t in TOPICS}


def test_value_starts_with_single_object_marker_and_schema_fingerprint(sample) -> None:
    name, record = sample
    data = serde.encode(name, record)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == serde.codec(name).fingerprint
    assert serde.writer_schema(data) == name


def test_topic_kind_and_schema_name_select_the_same_codec() -> None:
    for topic in TOPICS:
        assert serde.codec(topic.kind) is serde.codec(topic.value_schema)


def test_topic_key_is_the_utf8_key_field_or_the_original_key_bytes(sample) -> None:
    name, record = sample
    topic = next(t for t in TOPICS if t.value_schema == name)
    key = topic.key(record)
    if name == "DeadLetter":
        assert key == record["original_key"]
    else:
        assert isinstance(key, bytes) and key.decode()


def test_ticket_instruction_key_is_the_ticket_id(samples_by_schema) -> None:
    from wire.topics import TRADE_TICKETS

    for record in samples_by_schema["TicketInstruction"]:
        assert TRADE_TICKETS.key(record) == record["ticket"]["ticket_id"].encode()


def test_each_union_branch_comes_back_as_the_branch_it_was_written_as(samples_by_schema) -> None:
    proposal = samples_by_schema["ApprovedProposal"][0]
    kinds = [i["intent_type"] for i in roundtrip("ApprovedProposal", proposal)["trades_and_funding"]["intents"]]
    assert kinds == ["CASH_FLOW", "CASH_FLOW", "SECURITY_TRADE", "FX_SPOT", "SECURITY_TRADE"]
    tickets = [roundtrip("TicketInstruction", r)["ticket"] for r in samples_by_schema["TicketInstruction"]]
    assert [t["ticket_type"] for t in tickets] == ["SECURITY_ORDER", "FX_SPOT_ORDER", "CASH_TRANSFER"]
    assert "instrument_id" in tickets[0] and "pair" in tickets[1] and "amount" in tickets[2]
    payloads = [roundtrip("ExecutionCommand", r)["payload"] for r in samples_by_schema["ExecutionCommand"]]
    assert ["idempotency_key" in p for p in payloads] == [True, True, False, False]


def test_omitted_fields_with_defaults_decode_to_their_defaults(samples_by_schema) -> None:
    command = samples_by_schema["ExecutionCommand"][1]
    policy = {"max_slippage_bps": Decimal("30")}
    record = {**command, "payload": {**command["payload"], "execution_policy": policy}}
    del record["payload"]["artifact"]
    decoded = roundtrip("ExecutionCommand", record)["payload"]
    assert decoded["artifact"] is None
    assert decoded["execution_policy"] == {
        "time_in_force": "DAY", "order_type": "MARKET", "allow_partial_fills": True,
        "max_slippage_bps": Decimal("30"), "dry_run": False, "critical_sells": "FUNDING", "partial_funding": "SCALE_DOWN",
        "on_critical_rejection": "CANCEL_REMAINING",
    }


def test_decimals_keep_every_digit_and_trailing_zeros(samples_by_schema) -> None:
    event = samples_by_schema["OrderEvent"][0]
    digits = {
        "fill_id": None, "reason": None,
        "last_qty": Decimal("0.000000000000000000000000000000000001"),  # beyond any fixed Avro decimal scale
        "last_price": Decimal("149.80"),
        "filled_qty": Decimal("123456789012345678901234567890123456789.123456789"),  # over 38 digits
        "avg_price": Decimal("-0.00"),
    }
    decoded = roundtrip("OrderEvent", {**event, "details": digits})["details"]
    assert_identical(decoded, digits)


def test_exponent_form_decimals_are_written_in_plain_notation_and_compare_equal(samples_by_schema) -> None:
    assert decimals.to_wire(Decimal("1E+3")) == "1000"
    assert decimals.to_wire(Decimal("1.50E-7")) == "0.000000150"
    event = samples_by_schema["OrderEvent"][0]
    details = {**event["details"], "last_qty": Decimal("1E+3"), "last_price": Decimal("1.50E-7")}
    decoded = roundtrip("OrderEvent", {**event, "details": details})["details"]
    assert decoded["last_qty"] == Decimal("1E+3") and decoded["last_price"] == Decimal("1.50E-7")


def test_timestamps_decode_as_aware_utc_datetimes_to_the_microsecond(samples_by_schema) -> None:
    event = samples_by_schema["OrderEvent"][0]
    when = datetime(2026, 2, 18, 10, 0, 0, 999999, tzinfo=UTC)
    decoded = roundtrip("OrderEvent", {**event, "occurred_at": when})["occurred_at"]
    assert decoded == when and decoded.tzinfo is not None and decoded.utcoffset().total_seconds() == 0


def test_encoding_is_deterministic(sample) -> None:
    name, record = sample
    assert serde.encode(name, record) == serde.encode(name, record)


# -- properties ---------------------------------------------------------------------------

any_decimal = st.decimals(allow_nan=False, allow_infinity=False)
optional_decimals = st.none() | any_decimal
texts = st.text(max_size=40)
instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)

order_events = st.fixed_dictionaries({
    "event_id": texts,
    "execution_id": texts,
    "ticket_id": texts,
    "source": texts,
    "event_type": st.sampled_from([
        "ORDER_ACCEPTED", "ORDER_REJECTED", "PARTIAL_FILL", "FILLED", "CANCELLED", "PENDING_CANCEL", "CANCEL_REJECTED",
    ]),
    "external_order_id": st.none() | texts,
    "occurred_at": instants,
    "details": st.fixed_dictionaries({
        "fill_id": st.none() | texts,
        "last_qty": optional_decimals,
        "last_price": optional_decimals,
        "filled_qty": optional_decimals,
        "avg_price": optional_decimals,
        "reason": st.none() | texts,
    }),
})


@given(order_events)
def test_any_order_event_round_trips(event: dict[str, Any]) -> None:
    assert roundtrip("OrderEvent", event) == event


@given(any_decimal)
def test_any_finite_decimal_round_trips_equal_and_keeps_its_digits_when_written_plainly(value: Decimal) -> None:
    instruction = {
        "instruction_id": "ins", "instruction": "SUBMIT", "execution_id": "e", "proposal_id": "p",
        "version_no": 1, "correlation_id": None, "issued_at": datetime(2026, 1, 1, tzinfo=UTC),
        "ticket": {
            "ticket_id": "t", "ticket_type": "CASH_TRANSFER", "intent_id": "i", "order_type": "MARKET",
            "time_in_force": "DAY", "dependencies": [], "currency": "SGD", "amount": value,
        },
    }
    decoded = roundtrip("TicketInstruction", instruction)["ticket"]["amount"]
    assert decoded == value
    if value.as_tuple().exponent <= 0 and "E" not in str(value):
        assert str(decoded) == str(value)
