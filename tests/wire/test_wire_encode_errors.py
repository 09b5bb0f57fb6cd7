"""Records that do not match their schema raise EncodeError naming the schema and the field."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from wire import serde
from wire.errors import EncodeError


def encode_error(name: str, record: Any) -> EncodeError:
    with pytest.raises(EncodeError) as caught:
        serde.encode(name, record)
    assert caught.value.schema_name == name
    assert str(caught.value).startswith(f"cannot encode {name}")
    return caught.value


@pytest.fixture
def event(samples_by_schema) -> dict[str, Any]:
    return copy.deepcopy(samples_by_schema["OrderEvent"][0])


@pytest.fixture
def state_change(samples_by_schema) -> dict[str, Any]:
    return copy.deepcopy(samples_by_schema["ExecutionStateChange"][1])


def test_float_in_a_decimal_field_is_refused_and_named(event) -> None:
    event["details"]["last_qty"] = 20.0
    error = encode_error("OrderEvent", event)
    assert error.field == "details.last_qty"
    assert error.reason == "expected a finite decimal.Decimal, got float 20.0"
    assert str(error) == "cannot encode OrderEvent at details.last_qty: expected a finite decimal.Decimal, got float 20.0"


@pytest.mark.parametrize("value", ["20", 20, Decimal("NaN"), Decimal("Infinity"), Decimal("sNaN")])
def test_decimal_fields_take_only_finite_decimals(event, value) -> None:
    event["details"]["filled_qty"] = value
    assert encode_error("OrderEvent", event).field == "details.filled_qty"


def test_unknown_enum_symbol_is_named_with_the_allowed_symbols(event) -> None:
    event["event_type"] = "FILL"
    error = encode_error("OrderEvent", event)
    assert error.field == "event_type"
    assert "'FILL' is not a OrderEventType symbol" in error.reason and "PARTIAL_FILL" in error.reason


def test_missing_required_field_is_named(event) -> None:
    del event["event_id"]
    error = encode_error("OrderEvent", event)
    assert (error.field, error.reason) == ("event_id", "missing required field")


def test_misspelt_field_is_refused_instead_of_silently_dropped(event) -> None:
    event["externl_order_id"] = event.pop("external_order_id")
    error = encode_error("OrderEvent", event)
    assert error.field is None and "unknown field(s) for OrderEvent: externl_order_id" in error.reason


def test_misspelt_nested_field_is_named_with_its_record(event) -> None:
    event["details"]["lastqty"] = Decimal("1")
    error = encode_error("OrderEvent", event)
    assert error.field == "details" and "lastqty" in error.reason


def test_wrong_primitive_type_is_named(event) -> None:
    event["ticket_id"] = 42
    assert encode_error("OrderEvent", event).reason == "expected string, got int 42"


def test_timestamp_must_be_a_datetime(event) -> None:
    event["occurred_at"] = "2026-02-18T10:00:00Z"
    assert encode_error("OrderEvent", event).field == "occurred_at"


def test_problem_inside_an_array_names_the_index(state_change) -> None:
    state_change["execution"]["tickets"][1]["filled_qty"] = 70.0
    assert encode_error("ExecutionStateChange", state_change).field == "execution.tickets[1].filled_qty"


def test_problem_inside_a_union_of_records_is_blamed_on_the_branch_it_resembles(state_change) -> None:
    state_change["execution"]["tickets"][2]["ticket"]["buy_amount"] = 1500.0  # the FX ticket
    error = encode_error("ExecutionStateChange", state_change)
    assert error.field == "execution.tickets[2].ticket.buy_amount"


def test_nullable_record_with_a_bad_inner_field_names_the_inner_field(samples_by_schema) -> None:
    command = copy.deepcopy(samples_by_schema["ExecutionCommand"][0])
    command["payload"]["artifact"]["trades_and_funding"]["intents"][2]["quantity"] = 120.0
    error = encode_error("ExecutionCommand", command)
    assert error.field == "payload.artifact.trades_and_funding.intents[2].quantity"


def test_record_that_is_not_a_mapping(event) -> None:
    assert "expected a mapping" in encode_error("OrderEvent", [event]).reason


def test_encode_error_chains_the_fastavro_error_and_pickles(event) -> None:
    event["details"]["avg_price"] = 1.5
    error = encode_error("OrderEvent", event)
    assert error.__cause__ is not None
    clone = pickle.loads(pickle.dumps(error))
    assert (str(clone), clone.field) == (str(error), error.field)


def test_unknown_schema_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="order-events"):
        serde.codec("OrderEvents")


def test_aware_datetimes_in_other_zones_are_stored_as_the_same_instant(event) -> None:
    from datetime import timedelta

    local = datetime(2026, 2, 18, 18, 0, tzinfo=timezone(timedelta(hours=8)))
    event["occurred_at"] = local
    decoded = serde.decode("OrderEvent", serde.encode("OrderEvent", event), topic="t", partition=0, offset=0)
    assert decoded["occurred_at"] == local and decoded["occurred_at"].utcoffset() == timedelta(0)
