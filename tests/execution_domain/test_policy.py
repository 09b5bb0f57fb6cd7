from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from execution_domain.policy import (
    CriticalSells,
    ExecutionPolicy,
    OnCriticalRejection,
    OrderType,
    PartialFunding,
    TimeInForce,
)
from testkit.domain import DOMAIN_DOC, policy_default_rows, policy_of


def test_defaults_are_documented_values() -> None:
    policy = policy_of(max_slippage_bps="25")
    assert policy.time_in_force is TimeInForce.DAY
    assert policy.order_type is OrderType.MARKET
    assert policy.allow_partial_fills is True
    assert policy.dry_run is False
    assert policy.critical_sells is CriticalSells.FUNDING
    assert policy.partial_funding is PartialFunding.SCALE_DOWN
    assert policy.on_critical_rejection is OnCriticalRejection.CANCEL_REMAINING
    assert policy.max_slippage_bps == Decimal("25")


def test_max_slippage_is_required_because_it_is_a_risk_parameter() -> None:
    with pytest.raises(ValidationError):
        ExecutionPolicy()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "fields",
    [
        {"max_slippage_bps": 25.0},  # floats never carry money or bps
        {"max_slippage_bps": "-1"},
        {"max_slippage_bps": "25", "dry_run": "yes"},
        {"max_slippage_bps": "25", "time_in_force": "WEEK"},
        {"max_slippage_bps": "25", "unknown": 1},
        {"max_slippage_bps": "25", "on_critical_rejection": "IGNORE"},
    ],
)
def test_invalid_policies_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExecutionPolicy.model_validate(fields)


def test_policy_round_trips_through_its_primitive_form() -> None:
    policy = policy_of(max_slippage_bps="12.50", time_in_force="IOC", partial_funding="CANCEL", dry_run=True,
                             on_critical_rejection="LET_RUN")
    primitive = policy.to_primitive()
    assert primitive["max_slippage_bps"] == "12.5"
    assert ExecutionPolicy.from_primitive(primitive) == policy


def test_policy_is_immutable() -> None:
    policy = policy_of(max_slippage_bps="25")
    with pytest.raises(ValidationError):
        policy.dry_run = True


def test_a_policy_stored_before_on_critical_rejection_reads_as_the_default() -> None:
    stored = {k: v for k, v in policy_of(max_slippage_bps="25").to_primitive().items()
              if k != "on_critical_rejection"}
    assert ExecutionPolicy.from_primitive(stored).on_critical_rejection is OnCriticalRejection.CANCEL_REMAINING


def test_the_domain_doc_lists_every_policy_field_with_its_default() -> None:
    doc = DOMAIN_DOC.read_text(encoding="utf-8")
    table = doc.split("## Policy defaults", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    expected = policy_default_rows()
    assert len(rows) == len(expected)
    for start in expected:
        assert any(row.startswith(start) for row in rows), start
