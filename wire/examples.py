"""Example records of every wire schema, mirroring docs/glossary.md.

Used by the wire tests (every test taking a `sample` argument runs once per entry of
SAMPLES) and by the smoke run, which publishes one record of each schema to a real broker.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

UTC = UTC
T0 = datetime(2026, 2, 18, 10, 0, 0, tzinfo=UTC)
PROPOSAL_HASH = "sha256:" + hashlib.sha256(b"prop_123/2").hexdigest()


def at(second: int, micro: int = 0) -> datetime:
    return T0.replace(second=second, microsecond=micro)


def ticket_id(intent_id: str) -> str:
    return "tkt_" + hashlib.sha1((PROPOSAL_HASH + intent_id).encode()).hexdigest()[:12]


def proposal(*, with_cash: bool = True) -> dict[str, Any]:
    intents: list[dict[str, Any]] = [
        {
            "intent_id": "oi_sell_1", "intent_type": "SECURITY_TRADE", "dependencies": [],
            "instrument_id": "SG_EQ_BANK", "side": "SELL", "quantity": Decimal("120"),
            "currency": "SGD", "indicative_price": Decimal("31.45"),
        },
        {
            "intent_id": "oi_fx_1", "intent_type": "FX_SPOT", "dependencies": ["oi_sell_1"],
            "pair": "USD/SGD", "buy_currency": "USD", "buy_amount": Decimal("1500.00"),
            "sell_currency": "SGD", "sell_amount_estimated": Decimal("2025.00"),
        },
        {
            "intent_id": "oi_buy_1", "intent_type": "SECURITY_TRADE", "dependencies": ["oi_fx_1"],
            "instrument_id": "US_EQ_ETF", "side": "BUY", "quantity": Decimal("10"),
            "currency": "USD", "indicative_price": Decimal("101.2"),
        },
    ]
    if with_cash:
        intents.insert(0, {
            "intent_id": "oi_cash_1", "intent_type": "CASH_FLOW", "dependencies": [],
            "currency": "SGD", "amount": Decimal("-250.75"), "description": "advisory fee",
        })
        intents.insert(1, {
            "intent_id": "oi_cash_2", "intent_type": "CASH_FLOW", "dependencies": [],
            "currency": "SGD", "amount": Decimal("5000.00"), "description": "",
        })
    return {
        "proposal_id": "prop_123",
        "version_no": 2,
        "proposal_version_hash": PROPOSAL_HASH,
        "portfolio_id": "pf_001",
        "base_currency": "SGD",
        "created_at": at(0, 123456),
        "gate_decision": {
            "decision": "EXECUTION_READY",
            "reasons": [{"code": "SUITABILITY_OK", "message": "All suitability checks passed"}],
            "decided_at": at(5),
        },
        "trades_and_funding": {"funding_claimed": True, "intents": intents},
    }


def policy() -> dict[str, Any]:
    return {
        "time_in_force": "DAY", "order_type": "MARKET", "allow_partial_fills": True,
        "max_slippage_bps": Decimal("25"), "dry_run": False,
        "critical_sells": "FUNDING", "partial_funding": "SCALE_DOWN", "on_critical_rejection": "CANCEL_REMAINING",
    }


ACTOR = {"requested_by": "advisor_001", "channel": "ADVISOR_APP", "claimed_requested_by": None}


def _common(intent_id: str, ticket_type: str, deps: list[str]) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id(intent_id), "ticket_type": ticket_type, "intent_id": intent_id,
        "order_type": "MARKET", "time_in_force": "DAY", "dependencies": [ticket_id(d) for d in deps],
    }


def security_ticket(side: str = "BUY") -> dict[str, Any]:
    intent = "oi_buy_1" if side == "BUY" else "oi_sell_1"
    return {
        **_common(intent, "SECURITY_ORDER", ["oi_fx_1"] if side == "BUY" else []),
        "instrument_id": "US_EQ_ETF" if side == "BUY" else "SG_EQ_BANK", "side": side,
        "quantity": Decimal("10") if side == "BUY" else Decimal("120"),
        "currency": "USD" if side == "BUY" else "SGD",
        "constraints": {"max_slippage_bps": Decimal("25") if side == "BUY" else Decimal("12.5")},
    }


def fx_ticket() -> dict[str, Any]:
    return {
        **_common("oi_fx_1", "FX_SPOT_ORDER", ["oi_sell_1"]),
        "pair": "USD/SGD", "buy_currency": "USD", "buy_amount": Decimal("1500.00"),
        "sell_currency": "SGD", "sell_amount_estimated": Decimal("2025.00"),
    }


def cash_ticket() -> dict[str, Any]:
    return {**_common("oi_cash_1", "CASH_TRANSFER", []), "currency": "SGD", "amount": Decimal("-250.75")}


def snapshot(status: str = "PARTIALLY_FILLED", content: str = "DELTA") -> dict[str, Any]:
    """A DELTA (in a state change: its tickets and rows), or with content SUMMARY a table row (no rows)."""
    return {
        "execution_id": "exec_20260218_abc", "proposal_id": "prop_123", "version_no": 2,
        "proposal_version_hash": PROPOSAL_HASH, "portfolio_id": "pf_001", "status": status,
        "created_at": at(10), "updated_at": at(42, 500000),
        "idempotency_key": "idem-7f3a", "request_hash": "sha256:" + "ab" * 32,
        "policy": policy(), "actor": ACTOR,
        "tickets": [
            {
                "ticket": cash_ticket(), "status": "FILLED", "released": True,
                "order_quantity": Decimal("250.75"), "filled_qty": Decimal("250.75"), "avg_price": None,
                "overfill_qty": Decimal("0"), "external_order_id": "CSH-1", "last_event_at": at(20),
                "reason": None,
            },
            {
                "ticket": security_ticket("SELL"), "status": "PARTIAL_FILL", "released": True,
                "order_quantity": Decimal("120"), "filled_qty": Decimal("70"),
                "avg_price": Decimal("31.4412345678901234567890123456"), "overfill_qty": Decimal("0"),
                "external_order_id": "OMS12345", "last_event_at": at(42, 500000), "reason": None,
            },
            {
                "ticket": fx_ticket(), "status": "PENDING_SUBMIT", "released": False,
                "order_quantity": Decimal("1500.00"), "filled_qty": Decimal("0"), "avg_price": None,
                "overfill_qty": Decimal("0"), "external_order_id": None, "last_event_at": None,
                "reason": None,
            },
        ],
        "events": [
            {
                "seq": 1, "kind": "EXECUTION_CREATED", "ticket_id": None, "event_type": None,
                "event_id": None, "from_state": None, "to_state": "CREATED", "reason": None,
                "occurred_at": at(10), "source": None,
            },
            {
                "seq": 2, "kind": "ORDER_EVENT", "ticket_id": ticket_id("oi_sell_1"),
                "event_type": "PARTIAL_FILL", "event_id": "exec-rpt-9", "from_state": "ACCEPTED",
                "to_state": "PARTIAL_FILL", "reason": None, "occurred_at": at(42, 500000),
                "source": "OMS_X",
            },
            {
                "seq": 3, "kind": "ANOMALY", "ticket_id": ticket_id("oi_sell_1"),
                "event_type": "PARTIAL_FILL", "event_id": "exec-rpt-9", "from_state": None,
                "to_state": None, "reason": "same fill id, same quantity", "occurred_at": at(43),
                "source": "OMS_X",
            },
        ],
        "anomaly_count": 1,
        "content": content, "ticket_count": 3, "open_ticket_count": 2, "is_complete": False,
        "event_count": 3, "last_sequence": 7,
    }


def summary() -> dict[str, Any]:
    return {**snapshot(content="SUMMARY"), "events": []}


def order_event(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": "exec-rpt-9", "execution_id": "exec_20260218_abc", "ticket_id": ticket_id("oi_sell_1"),
        "source": "OMS_X", "event_type": "PARTIAL_FILL", "external_order_id": "OMS12345",
        "occurred_at": at(42, 500000),
        "details": {
            "fill_id": "fill-2", "last_qty": Decimal("20"), "last_price": Decimal("31.4500000001"),
            "filled_qty": Decimal("70"), "avg_price": Decimal("31.4412345678901234567890123456"),
            "reason": None,
        },
    }
    event.update(overrides)
    return event


NULL_DETAILS = {k: None for k in ("fill_id", "last_qty", "last_price", "filled_qty", "avg_price", "reason")}

SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("ApprovedProposal", "all-intent-kinds", proposal()),
    ("ApprovedProposal", "blocked-no-cash", {
        **proposal(with_cash=False),
        "gate_decision": {"decision": "BLOCKED", "reasons": [], "decided_at": at(5)},
    }),
    ("ExecutionCommand", "create-inline-artifact", {
        "command_id": "cmd_1", "command_type": "CREATE_EXECUTION", "execution_id": "exec_20260218_abc",
        "correlation_id": "corr-1", "issued_at": at(9),
        "payload": {
            "idempotency_key": "idem-7f3a", "request_hash": "sha256:" + "ab" * 32, "proposal_id": "prop_123",
            "version_no": 2, "execution_policy": policy(), "actor": ACTOR, "artifact": proposal(),
        },
    }),
    ("ExecutionCommand", "create-stored-artifact", {
        "command_id": "cmd_2", "command_type": "CREATE_EXECUTION", "execution_id": "exec_20260218_abc",
        "correlation_id": "corr-2", "issued_at": at(9),
        "payload": {
            "idempotency_key": "idem-7f3a", "request_hash": "sha256:" + "ab" * 32, "proposal_id": "prop_123",
            "version_no": 2, "execution_policy": {**policy(), "time_in_force": "IOC", "dry_run": True},
            "actor": ACTOR, "artifact": None,
        },
    }),
    ("ExecutionCommand", "cancel", {
        "command_id": "cmd_3", "command_type": "CANCEL_EXECUTION", "execution_id": "exec_20260218_abc",
        "correlation_id": "corr-3", "issued_at": at(50),
        "payload": {"reason": "client withdrew instruction", "actor": ACTOR},
    }),
    ("ExecutionCommand", "cancel-no-reason", {
        "command_id": "cmd_4", "command_type": "CANCEL_EXECUTION", "execution_id": "exec_20260218_abc",
        "correlation_id": "corr-4", "issued_at": at(51),
        "payload": {"reason": None, "actor": ACTOR},
    }),
    ("CommandResult", "created-with-snapshot", {
        "command_id": "cmd_1", "correlation_id": "corr-1", "outcome": "CREATED",
        "execution_id": "exec_20260218_abc", "existing_execution_id": None, "problem": None,
        "execution": snapshot("SUBMITTED"),
    }),
    ("CommandResult", "conflict", {
        "command_id": "cmd_5", "correlation_id": "corr-5", "outcome": "CONFLICT", "execution_id": None,
        "existing_execution_id": "exec_20260218_abc",
        "problem": {"title": "Idempotency key reused", "detail": "request hash differs from the original"},
        "execution": None,
    }),
    ("CommandResult", "not-found-no-detail", {
        "command_id": "cmd_6", "correlation_id": "corr-6", "outcome": "NOT_FOUND", "execution_id": None,
        "existing_execution_id": None, "problem": {"title": "Proposal version not found", "detail": None},
        "execution": None,
    }),
    ("TicketInstruction", "submit-security", {
        "instruction_id": "ins_1", "instruction": "SUBMIT", "execution_id": "exec_20260218_abc",
        "proposal_id": "prop_123", "version_no": 2, "correlation_id": "corr-1", "issued_at": at(11),
        "ticket": security_ticket("BUY"),
    }),
    ("TicketInstruction", "submit-fx", {
        "instruction_id": "ins_2", "instruction": "SUBMIT", "execution_id": "exec_20260218_abc",
        "proposal_id": "prop_123", "version_no": 2, "correlation_id": None, "issued_at": at(11),
        "ticket": fx_ticket(),
    }),
    ("TicketInstruction", "cancel-cash", {
        "instruction_id": "ins_3", "instruction": "CANCEL", "execution_id": "exec_20260218_abc",
        "proposal_id": "prop_123", "version_no": 2, "correlation_id": "corr-3", "issued_at": at(50),
        "ticket": cash_ticket(),
    }),
    ("OrderEvent", "partial-fill", order_event()),
    ("OrderEvent", "accepted-null-details", order_event(event_id="exec-rpt-1", event_type="ORDER_ACCEPTED",
                                                        details=dict(NULL_DETAILS))),
    ("OrderEvent", "rejected-no-external-id", order_event(
        event_id="exec-rpt-2", event_type="ORDER_REJECTED", external_order_id=None,
        details={**NULL_DETAILS, "reason": "insufficient buying power"})),
    ("ExecutionStateChange", "created", {
        "change_id": "chg_1", "execution_id": "exec_20260218_abc", "sequence": 1, "occurred_at": at(10),
        "correlation_id": "corr-1", "cause": {"kind": "COMMAND", "id": "cmd_1"},
        "execution_transition": {"from_state": None, "to_state": "CREATED"},
        "ticket_transitions": [
            {"ticket_id": ticket_id("oi_cash_1"), "from_state": None, "to_state": "PENDING_SUBMIT"},
        ],
        "execution": snapshot("CREATED"),
    }),
    ("ExecutionStateChange", "fill-without-execution-transition", {
        "change_id": "chg_7", "execution_id": "exec_20260218_abc", "sequence": 7, "occurred_at": at(42, 600000),
        "correlation_id": None, "cause": {"kind": "ORDER_EVENT", "id": "exec-rpt-9"},
        "execution_transition": None,
        "ticket_transitions": [
            {"ticket_id": ticket_id("oi_sell_1"), "from_state": "ACCEPTED", "to_state": "PARTIAL_FILL"},
        ],
        "execution": snapshot(),
    }),
    ("AdmissionRequest", "admit-inline-artifact", {
        "request_id": "cmd_1", "kind": "ADMIT", "proposal_id": "prop_123", "version_no": 2,
        "execution_id": "exec_20260218_abc", "correlation_id": "corr-1", "issued_at": at(9),
        "reserve_version": True, "artifact": proposal(), "ended_state": None,
    }),
    ("AdmissionRequest", "release", {
        "request_id": "rel_exec_20260218_abc", "kind": "RELEASE", "proposal_id": "prop_123", "version_no": 2,
        "execution_id": "exec_20260218_abc", "correlation_id": "corr-1", "issued_at": at(30),
        "reserve_version": False, "artifact": None, "ended_state": "REJECTED",
    }),
    ("AdmissionDecision", "admitted", {
        "request_id": "cmd_1", "execution_id": "exec_20260218_abc", "proposal_id": "prop_123", "version_no": 2,
        "correlation_id": "corr-1", "decided_at": at(9), "outcome": "ADMITTED", "artifact": proposal(),
        "existing_execution_id": None, "reason": None, "attempt": 2,
    }),
    ("AdmissionDecision", "version-in-use", {
        "request_id": "cmd_9", "execution_id": "exec_other", "proposal_id": "prop_123", "version_no": 2,
        "correlation_id": "corr-9", "decided_at": at(19), "outcome": "VERSION_IN_USE", "artifact": None,
        "existing_execution_id": "exec_20260218_abc", "reason": "version 2 is being executed by exec_20260218_abc",
        "attempt": 1,
    }),
    ("DeadLetter", "undecodable-order-event", {
        "original_topic": "order-events", "original_partition": 2, "original_offset": 1534,
        "original_key": b"exec_20260218_abc", "original_value": b"\xc3\x01garbage\x00\xff",
        "original_headers": [
            {"key": "correlation_id", "value": b"corr-1"},
            {"key": "empty", "value": None},
        ],
        "reason": "cannot decode OrderEvent from order-events[2]@1534: unknown writer schema fingerprint",
        "error_type": "DecodeError", "failed_at": at(44), "instance_id": "processor-0",
        "original_value_size": 12, "original_value_sha256": "9" * 64, "original_value_truncated": False,
    }),
    ("DeadLetter", "tombstone", {
        "original_topic": "order-events", "original_partition": 0, "original_offset": 0,
        "original_key": None, "original_value": None, "original_headers": [],
        "reason": "empty value", "error_type": "DecodeError", "failed_at": at(45), "instance_id": "processor-1",
        "original_value_size": None, "original_value_sha256": None, "original_value_truncated": False,
    }),
    ("ExecutionSnapshot", "summary", summary()),
]


