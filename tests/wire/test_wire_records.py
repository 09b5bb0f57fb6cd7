"""wire.records: wire records <-> domain values, checked through the real Avro codec."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from execution_domain import (
    Actor,
    ArtifactInvalid,
    CancelRequest,
    EventDetails,
    Execution,
    ExecutionPolicy,
    InMemoryHistory,
    LogEntry,
    OrderEvent,
    OrderEventType,
    Outcome,
    RequestOrigin,
    apply_order_event,
    create_execution,
    mark_released,
    parse_artifact,
    replay,
    request_cancel,
)
from execution_domain.canonical import to_primitive
from execution_domain.events import NO_DETAILS
from execution_domain.policy import CriticalSells, OrderType, PartialFunding, TimeInForce
from execution_domain.proposal import seal_artifact
from execution_domain.tickets import CashTransferTicket, FxSpotOrderTicket, SecurityOrderTicket
from wire import examples, serde
from wire import records as translate
from wire.errors import EncodeError
from wire.records import (
    CreateCommand,
    actor_from_record,
    actor_to_record,
    artifact_from_record,
    artifact_to_record,
    cancel_request_from_record,
    create_command_from_record,
    order_event_from_record,
    order_event_to_record,
    policy_from_record,
    policy_to_record,
    snapshot_record,
    state_change_record,
    ticket_from_record,
    ticket_instruction_record,
    ticket_to_record,
    ticket_union_value,
)
from wire.views import ExecutionView

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples" / "proposals").glob("*.json"))
T0 = datetime(2026, 2, 18, 10, 0, 0, tzinfo=UTC)
POLICY = ExecutionPolicy(max_slippage_bps=Decimal("25"))
ORIGIN = RequestOrigin(Actor("advisor_001", "ADVISOR_APP"), idempotency_key="idem-001", correlation_id="corr-001")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def wire_round_trip(schema: str, record: dict[str, Any]) -> dict[str, Any]:
    return serde.decode(schema, serde.encode(schema, record), topic="t", partition=0, offset=0)


def plain(value: Any) -> Any:
    """A built record as the decoder gives it back: fastavro's (name, record) union tuples unwrapped."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], dict):
        return plain(value[1])
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def load_raw(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def fill(ticket_id: str, event_id: str, qty: str, price: str, *, seconds: float, filled: bool = False) -> OrderEvent:
    return OrderEvent(
        event_id=event_id,
        execution_id="exec_001",
        ticket_id=ticket_id,
        source="OMS_X",
        event_type=OrderEventType.FILLED if filled else OrderEventType.PARTIAL_FILL,
        external_order_id=f"OMS-{ticket_id[-4:]}",
        occurred_at=at(seconds),
        details=EventDetails(fill_id=f"f-{event_id}", last_qty=Decimal(qty), last_price=Decimal(price)),
    )


def oms(
    ticket_id: str, event_id: str, event_type: OrderEventType, *, seconds: float, reason: str | None = None
) -> OrderEvent:
    return OrderEvent(
        event_id=event_id,
        execution_id="exec_001",
        ticket_id=ticket_id,
        source="OMS_X",
        event_type=event_type,
        external_order_id=f"OMS-{ticket_id[-4:]}",
        occurred_at=at(seconds),
        details=EventDetails(reason=reason),
    )


class Scenario:
    """sgd_multi_currency: both SELLs handed over; one fills, the other fills partly and is
    cancelled, so the FX and one BUY are released scaled down; a conflicting fill is an anomaly."""

    def __init__(self) -> None:
        artifact = parse_artifact(load_raw(REPO / "samples" / "proposals" / "sgd_multi_currency.json"))
        created = create_execution("exec_001", artifact, POLICY, T0, ORIGIN)
        self.outcomes: list[Outcome] = [created]
        self.history = InMemoryHistory()
        execution = created.execution
        sell_gb, sell_corp, fx, buy_reit, buy_us = (t.ticket_id for t in execution.tickets)
        self.ids = {"sell_gb": sell_gb, "sell_corp": sell_corp, "fx": fx, "buy_reit": buy_reit, "buy_us": buy_us}
        self.creation_outcomes: list[Outcome] = [created]
        for ticket in created.tickets_to_submit:
            marked = mark_released(execution, ticket.ticket_id, at(1), f"OMS-{ticket.ticket_id[-4:]}")
            self.creation_outcomes.append(marked)
            execution = marked.execution
        self.outcomes = list(self.creation_outcomes)
        for event in (
            oms(sell_gb, "ev-ack-gb", OrderEventType.ORDER_ACCEPTED, seconds=2),
            fill(sell_corp, "ev-corp-1", "6000", "0.998", seconds=3, filled=True),
            fill(sell_gb, "ev-gb-1", "5000", "1.0125", seconds=4),
            fill(sell_gb, "ev-gb-2", "2000", "1.0130", seconds=5),
            # same fill id as ev-gb-2 with another quantity: FILL_CONFLICT, nothing applied
            replace(fill(sell_gb, "ev-gb-3", "2500", "1.0130", seconds=6), details=EventDetails(
                fill_id="f-ev-gb-2", last_qty=Decimal("2500"), last_price=Decimal("1.0130"))),
            oms(sell_gb, "ev-gb-cxl", OrderEventType.CANCELLED, seconds=7, reason="IOC remainder cancelled"),
        ):
            outcome = apply_order_event(execution, event, self.history)
            self.history.remember(outcome.remembered)
            self.outcomes.append(outcome)
            execution = outcome.execution
        self.last_event_outcome = self.outcomes[-1]
        self.released_after_cancel = self.last_event_outcome.tickets_to_submit
        self.execution: Execution = execution
        self.entries: list[LogEntry] = [o.entry for o in self.outcomes if o.entry is not None]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario()


# --- artifacts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_artifact_round_trips_through_the_wire_with_its_sealed_hash(path: Path) -> None:
    raw = load_raw(path)
    artifact = parse_artifact(raw)
    record = artifact_to_record(artifact)
    decoded = wire_round_trip("ApprovedProposal", record)

    again = artifact_from_record(decoded)  # re-validates: hash recomputed by the domain matches
    assert again == artifact
    assert artifact_to_record(again) == decoded == record
    assert again.to_primitive() == raw  # the sealed primitive form, byte for byte once dumped


def test_record_with_unnormalised_decimals_and_microsecond_times_validates_against_the_sealed_hash() -> None:
    # What an upstream publisher does: seal the primitive form, then publish Decimals with any digits.
    draft = to_primitive(examples.proposal())
    draft["created_at"] = "2026-02-18T10:00:00.123456Z"
    sealed = seal_artifact(draft)
    record = examples.proposal()  # Decimal("1500.00"), Decimal("5000.00"), aware datetimes
    record["proposal_version_hash"] = sealed["proposal_version_hash"]
    assert str(record["trades_and_funding"]["intents"][3]["buy_amount"]) == "1500.00"

    decoded = wire_round_trip("ApprovedProposal", record)
    artifact = artifact_from_record(decoded)

    assert artifact.proposal_version_hash == sealed["proposal_version_hash"]
    assert artifact.created_at == record["created_at"]
    assert artifact_to_record(artifact) == record  # equal after normalisation (Decimal compares by value)
    normalised = wire_round_trip("ApprovedProposal", artifact_to_record(artifact))
    assert str(normalised["trades_and_funding"]["intents"][3]["buy_amount"]) == "1500"


def test_record_with_a_hash_that_does_not_match_its_content_raises_artifact_invalid() -> None:
    record = wire_round_trip("ApprovedProposal", examples.proposal())  # its hash is a placeholder
    with pytest.raises(ArtifactInvalid) as caught:
        artifact_from_record(record)
    assert [p.code for p in caught.value.problems] == ["HASH_MISMATCH"]


def test_tampered_quantity_is_a_hash_mismatch() -> None:
    record = artifact_to_record(parse_artifact(load_raw(SAMPLES[0])))
    intents = record["trades_and_funding"]["intents"]
    security = next(i for i in intents if i["intent_type"] == "SECURITY_TRADE")
    security["quantity"] += 1
    with pytest.raises(ArtifactInvalid) as caught:
        artifact_from_record(wire_round_trip("ApprovedProposal", record))
    assert "HASH_MISMATCH" in [p.code for p in caught.value.problems]


def test_structurally_invalid_record_reports_every_problem_instead_of_a_type_error() -> None:
    record = artifact_to_record(parse_artifact(load_raw(SAMPLES[0])))
    record["created_at"] = record["created_at"].replace(tzinfo=None)  # naive: never from the decoder
    record["base_currency"] = "sgd"
    with pytest.raises(ArtifactInvalid) as caught:
        artifact_from_record(record)
    problems = {(p.path, p.code) for p in caught.value.problems}
    assert problems == {("created_at", "INVALID_VALUE"), ("base_currency", "INVALID_VALUE")}


# --- policy, actor -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        POLICY,
        ExecutionPolicy(
            time_in_force=TimeInForce.IOC,
            order_type=OrderType.LIMIT,
            allow_partial_fills=False,
            max_slippage_bps=Decimal("12.50"),
            dry_run=True,
            critical_sells=CriticalSells.NONE,
            partial_funding=PartialFunding.CANCEL,
        ),
    ],
    ids=["defaults", "every-field-set"],
)
def test_policy_round_trips_through_the_wire(policy: ExecutionPolicy) -> None:
    record = policy_to_record(policy)
    command = examples.SAMPLES[3][2]  # a create command: the policy travels in its payload
    command = {**command, "payload": {**command["payload"], "execution_policy": record}}
    decoded = wire_round_trip("ExecutionCommand", command)["payload"]["execution_policy"]

    assert decoded == record
    assert policy_from_record(decoded) == policy
    assert wire_texts(decoded) == policy.to_primitive()  # normalised bps text: "12.5", not "12.50"


def test_policy_record_the_schema_accepts_but_the_domain_refuses_raises() -> None:
    with pytest.raises(ValidationError):
        policy_from_record({**examples.policy(), "max_slippage_bps": Decimal("-1")})


def test_actor_round_trips() -> None:
    actor = Actor("advisor_001", "ADVISOR_APP")
    assert actor_to_record(actor) == examples.ACTOR
    assert actor_from_record(examples.ACTOR) == actor


# --- order events ------------------------------------------------------------------------------------------

EVENT_CASES = {
    "per-fill": examples.order_event(),  # carries informational cumulative fields too
    "cumulative": examples.order_event(
        event_id="exec-rpt-10",
        details={**examples.NULL_DETAILS, "filled_qty": Decimal("90.0"), "avg_price": Decimal("31.4470")},
    ),
    "reject-with-reason": examples.order_event(
        event_id="exec-rpt-2", event_type="ORDER_REJECTED", external_order_id=None,
        details={**examples.NULL_DETAILS, "reason": "insufficient buying power"},
    ),
    "null-details": examples.order_event(event_id="exec-rpt-1", event_type="ORDER_ACCEPTED",
                                         details=dict(examples.NULL_DETAILS)),
}


@pytest.mark.parametrize("case", EVENT_CASES)
def test_order_event_round_trips_through_the_wire(case: str) -> None:
    decoded = wire_round_trip("OrderEvent", EVENT_CASES[case])
    event = order_event_from_record(decoded)

    assert event == OrderEvent.from_primitive(to_primitive(EVENT_CASES[case]))  # what the domain itself parses
    assert order_event_to_record(event) == decoded
    assert order_event_from_record(wire_round_trip("OrderEvent", order_event_to_record(event))) == event


def test_order_event_details_map_field_by_field() -> None:
    per_fill = order_event_from_record(wire_round_trip("OrderEvent", EVENT_CASES["per-fill"]))
    assert per_fill.event_type is OrderEventType.PARTIAL_FILL and per_fill.details.is_per_fill
    assert (per_fill.details.fill_id, per_fill.details.last_qty, per_fill.details.last_price) == (
        "fill-2", Decimal("20"), Decimal("31.4500000001"))
    assert per_fill.occurred_at == at(42.5) and per_fill.occurred_at.tzinfo is not None

    cumulative = order_event_from_record(wire_round_trip("OrderEvent", EVENT_CASES["cumulative"]))
    assert cumulative.details.is_cumulative and cumulative.details.filled_qty == Decimal("90")

    rejected = order_event_from_record(wire_round_trip("OrderEvent", EVENT_CASES["reject-with-reason"]))
    assert rejected.external_order_id is None and rejected.details == EventDetails(reason="insufficient buying power")

    accepted = order_event_from_record(wire_round_trip("OrderEvent", EVENT_CASES["null-details"]))
    assert accepted.details is NO_DETAILS


def test_order_event_with_a_naive_timestamp_is_refused() -> None:
    record = {**EVENT_CASES["null-details"], "occurred_at": datetime(2026, 2, 18, 10, 0)}
    with pytest.raises(ValueError, match="timezone-aware"):
        order_event_from_record(record)


# --- tickets and instructions ----------------------------------------------------------------------------


def _tickets_of_every_type() -> tuple[Execution, list[Any]]:
    artifact = parse_artifact(load_raw(REPO / "samples" / "proposals" / "usd_cash_flow_eur.json"))
    execution = create_execution("exec_001", artifact, POLICY, T0, ORIGIN).execution
    return execution, list(execution.tickets)


def test_samples_give_tickets_of_every_type() -> None:
    _, tickets = _tickets_of_every_type()
    assert {type(t) for t in tickets} == {SecurityOrderTicket, FxSpotOrderTicket, CashTransferTicket}


@pytest.mark.parametrize("instruction", ["SUBMIT", "CANCEL"])
def test_tickets_of_every_type_encode_in_an_instruction_and_decode_to_the_same_ticket(instruction: str) -> None:
    execution, tickets = _tickets_of_every_type()
    for ticket in tickets:
        record = ticket_instruction_record(
            instruction_id=f"ins-{ticket.ticket_id}", instruction=instruction,  # type: ignore[arg-type]
            execution=execution, ticket=ticket, correlation_id="corr-001", issued_at=at(1),
        )
        decoded = wire_round_trip("TicketInstruction", record)

        assert decoded == plain(record)
        assert wire_texts(decoded["ticket"]) == ticket.to_primitive()  # same names, normalised decimal text
        assert ticket_from_record(decoded["ticket"]) == ticket
        assert (decoded["execution_id"], decoded["proposal_id"], decoded["version_no"]) == (
            "exec_001", execution.definition.proposal.proposal_id, execution.definition.proposal.version_no)


def wire_texts(value: Any) -> Any:
    """Decoded values with each Decimal as the exact text it had on the wire."""
    if isinstance(value, dict):
        return {key: wire_texts(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire_texts(item) for item in value]
    return str(value) if isinstance(value, Decimal) else value


def test_ticket_union_value_names_the_branch_by_its_full_name_which_fastavro_requires() -> None:
    execution, tickets = _tickets_of_every_type()
    names = {type(t): ticket_union_value(t)[0] for t in tickets}
    assert names == {
        SecurityOrderTicket: "com.wealth.execution.v1.SecurityOrderTicket",
        FxSpotOrderTicket: "com.wealth.execution.v1.FxSpotOrderTicket",
        CashTransferTicket: "com.wealth.execution.v1.CashTransferTicket",
    }
    record = ticket_instruction_record(instruction_id="i", instruction="SUBMIT", execution=execution,
                                       ticket=tickets[0], correlation_id=None, issued_at=at(1))
    # Short name: fastavro finds no such branch.
    with pytest.raises(EncodeError):
        serde.encode("TicketInstruction", {**record, "ticket": ("CashTransferTicket", record["ticket"][1])})
    # Named branch that does not fit the record: refused, not written under the wrong branch.
    with pytest.raises(EncodeError):
        serde.encode("TicketInstruction", {**record, "ticket": (names[SecurityOrderTicket], record["ticket"][1])})
    # Same bytes as letting fastavro pick the branch itself.
    assert serde.encode("TicketInstruction", record) == serde.encode("TicketInstruction", plain(record))


def test_submit_instruction_carries_the_scaled_effective_ticket(scenario: Scenario) -> None:
    released = {t.ticket_id: t for t in scenario.released_after_cancel}
    fx = released[scenario.ids["fx"]]
    generated = scenario.execution.ticket(fx.ticket_id)
    assert isinstance(fx, FxSpotOrderTicket) and isinstance(generated, FxSpotOrderTicket)
    assert fx.buy_amount < generated.buy_amount  # scaled down: the GB sell filled 7000 of 9000

    record = ticket_instruction_record(instruction_id="ins-fx", instruction="SUBMIT", execution=scenario.execution,
                                       ticket=fx, correlation_id=None, issued_at=at(8))
    decoded = wire_round_trip("TicketInstruction", record)
    assert decoded["ticket"]["buy_amount"] == fx.buy_amount == Decimal("7970.66")
    assert decoded["ticket"]["sell_amount_estimated"] == fx.sell_amount_estimated
    assert ticket_from_record(decoded["ticket"]) == scenario.execution.effective_ticket(fx.ticket_id)


def test_instruction_for_a_ticket_of_another_execution_is_refused(scenario: Scenario) -> None:
    _, tickets = _tickets_of_every_type()
    with pytest.raises(ValueError, match="not part of execution"):
        ticket_instruction_record(instruction_id="i", instruction="CANCEL", execution=scenario.execution,
                                  ticket=tickets[0], correlation_id=None, issued_at=at(1))


# --- snapshots and state changes ---------------------------------------------------------------------------


def test_snapshot_encodes_inside_a_state_change_and_a_command_result_and_decodes_back(scenario: Scenario) -> None:
    snapshot = snapshot_record(scenario.execution)
    change = state_change_record(
        change_id="chg-7", sequence=7, occurred_at=at(7.5), correlation_id="corr-001",
        cause_kind="ORDER_EVENT", cause_id="ev-gb-cxl", outcome=scenario.last_event_outcome,
    )
    result = {
        "command_id": "cmd_1", "correlation_id": "corr-001", "outcome": "CREATED", "execution_id": "exec_001",
        "existing_execution_id": None, "problem": None, "execution": snapshot,
    }

    decoded_change = wire_round_trip("ExecutionStateChange", change)
    decoded_result = wire_round_trip("CommandResult", result)

    assert decoded_change == plain(change)
    assert decoded_result == plain(result)
    assert decoded_result["execution"] == plain(snapshot)
    # The change carries the header of the same execution, and only what the change touched.
    delta, summary = decoded_change["execution"], decoded_result["execution"]
    assert (delta["content"], summary["content"]) == ("DELTA", "SUMMARY")
    header = [key for key in summary if key not in ("tickets", "events", "content")]
    assert {key: delta[key] for key in header} == {key: summary[key] for key in header}
    by_id = {t["ticket"]["ticket_id"]: t for t in summary["tickets"]}
    assert delta["tickets"] == [by_id[t] for t in scenario.last_event_outcome.changed_tickets]
    assert summary["events"] == []


def test_snapshot_numbers_and_states_are_the_domains(scenario: Scenario) -> None:
    execution = scenario.execution
    snapshot = wire_round_trip("CommandResult", {
        "command_id": "c", "correlation_id": "c", "outcome": "REPLAYED", "execution": snapshot_record(execution),
    })["execution"]

    assert snapshot["status"] == execution.state.value == "PARTIALLY_FILLED"
    assert [t["ticket"]["ticket_id"] for t in snapshot["tickets"]] == [t.ticket_id for t in execution.tickets]
    for item, ticket in zip(snapshot["tickets"], execution.tickets, strict=True):
        record = execution.record(ticket.ticket_id)
        assert item["ticket"] == plain(ticket_to_record(ticket))  # as generated, never scaled
        assert item["status"] == record.state.value
        assert item["released"] is record.released_for_submission
        assert item["order_quantity"] == record.order_qty
        assert item["filled_qty"] == record.filled_qty
        assert item["avg_price"] == record.avg_price
        assert item["overfill_qty"] == record.overfill_qty
        assert (item["external_order_id"], item["last_event_at"], item["reason"]) == (
            record.external_order_id, record.last_event_at, record.reason)

    by_id = {t["ticket"]["ticket_id"]: t for t in snapshot["tickets"]}
    gb = by_id[scenario.ids["sell_gb"]]
    assert (gb["status"], gb["filled_qty"], gb["reason"]) == ("CANCELLED", Decimal("7000"), "IOC remainder cancelled")
    assert gb["avg_price"] == (Decimal("5000") * Decimal("1.0125") + Decimal("2000") * Decimal("1.0130")) / 7000
    corp = by_id[scenario.ids["sell_corp"]]
    assert (corp["status"], corp["filled_qty"], str(corp["avg_price"])) == ("FILLED", Decimal("6000"), "0.998")
    fx = by_id[scenario.ids["fx"]]
    assert fx["avg_price"] is None and fx["released"] and fx["order_quantity"] == Decimal("7970.66")
    assert fx["ticket"]["buy_amount"] == Decimal("10248")

    assert snapshot["anomaly_count"] == 1 == sum(len(e.anomalies) for e in scenario.entries)
    rows = [row for entry in scenario.entries for row in entry.rows()]
    assert snapshot["events"] == [] and snapshot["event_count"] == len(rows)
    assert snapshot["last_sequence"] == len(scenario.entries) == execution.seq
    assert (snapshot["ticket_count"], snapshot["open_ticket_count"], snapshot["is_complete"]) == (5, 3, False)

    definition = execution.definition
    assert (snapshot["created_at"], snapshot["updated_at"]) == (definition.created_at, at(7))
    assert (snapshot["idempotency_key"], snapshot["request_hash"]) == ("idem-001", definition.request_hash)
    assert policy_from_record(snapshot["policy"]) == definition.policy
    assert actor_from_record(snapshot["actor"]) == ORIGIN.actor
    assert (snapshot["proposal_id"], snapshot["version_no"], snapshot["proposal_version_hash"],
            snapshot["portfolio_id"]) == (definition.proposal.proposal_id, definition.proposal.version_no,
                                          definition.proposal.proposal_version_hash, definition.proposal.portfolio_id)


def test_snapshot_is_the_same_for_a_replayed_or_restored_execution(scenario: Scenario) -> None:
    expected = plain(snapshot_record(scenario.execution))
    assert plain(snapshot_record(scenario.execution)) == expected
    assert plain(snapshot_record(replay(scenario.entries))) == expected
    restored = Execution.from_primitive(json.loads(json.dumps(scenario.execution.to_primitive())),
                                        scenario.execution.definition)
    assert plain(snapshot_record(restored)) == expected


def test_state_changes_rebuild_the_execution_and_its_whole_log(scenario: Scenario) -> None:
    changes = [wire_round_trip("ExecutionStateChange", state_change_record(
        change_id=f"exec_001/{o.entry.seq}", sequence=o.entry.seq, occurred_at=o.entry.recorded_at, correlation_id=None,
        cause_kind="ORDER_EVENT", cause_id=f"ev-{o.entry.seq}", outcome=o)) for o in scenario.outcomes if o.entry]
    view = ExecutionView("exec_001")
    for change in reversed(changes):  # out of order: each applies once, in sequence order it must be
        view.apply_change(change)
    assert view.sequence == changes[-1]["sequence"]
    view = ExecutionView("exec_001")
    for change in changes + changes[:3]:  # redelivered changes are duplicates
        view.apply_change(change)
    summary = wire_round_trip("ExecutionSnapshot", snapshot_record(scenario.execution))
    assert view.tickets == {t["ticket"]["ticket_id"]: t for t in summary["tickets"]}
    rows = [row for entry in scenario.entries for row in entry.rows()]
    assert [view.events[seq]["kind"] for seq in sorted(view.events)] == [row.kind for row in rows]
    assert not view.missing_events and view.event_count == len(rows) == summary["event_count"]
    assert view.status == summary["status"] and view.is_complete is False


def test_snapshot_decimals_are_normalised_on_the_wire(scenario: Scenario) -> None:
    data = serde.encode("CommandResult", {"command_id": "c", "correlation_id": "c", "outcome": "REPLAYED",
                                          "execution": snapshot_record(scenario.execution)})
    tickets = serde.decode("CommandResult", data, topic="t", partition=0, offset=0)["execution"]["tickets"]
    for item in tickets:
        for key in ("order_quantity", "filled_qty", "overfill_qty", "avg_price"):
            text = None if item[key] is None else str(item[key])
            assert text is None or (("." not in text or not text.endswith("0")) and "E" not in text), (key, text)


def test_snapshot_without_an_idempotency_key_is_refused_rather_than_invented(scenario: Scenario) -> None:
    definition = replace(scenario.execution.definition, origin=replace(ORIGIN, idempotency_key=None))
    with pytest.raises(ValueError, match="idempotency key"):
        snapshot_record(replace(scenario.execution, definition=definition))


def test_state_change_of_a_creation_and_its_release_marks(scenario: Scenario) -> None:
    created, *marks = scenario.creation_outcomes
    decoded = wire_round_trip("ExecutionStateChange", state_change_record(
        change_id="chg-1", sequence=1, occurred_at=at(1), correlation_id="corr-001",
        cause_kind="COMMAND", cause_id="cmd_1", outcome=created,
    ))
    tickets = created.execution.tickets
    assert decoded["execution_transition"] == {"from_state": None, "to_state": "CREATED"}
    assert decoded["ticket_transitions"] == [
        {"ticket_id": t.ticket_id, "from_state": None, "to_state": "PENDING_SUBMIT"} for t in tickets]
    # A creation touches every ticket: its delta carries them all, and its rows from 1.
    assert [t["ticket"]["ticket_id"] for t in decoded["execution"]["tickets"]] == [t.ticket_id for t in tickets]
    assert [e["seq"] for e in decoded["execution"]["events"]] == list(range(1, created.entry.row_count + 1))
    assert decoded["cause"] == {"kind": "COMMAND", "id": "cmd_1"} and decoded["execution_id"] == "exec_001"

    sells = [scenario.ids["sell_gb"], scenario.ids["sell_corp"]]
    for sequence, (mark, sell) in enumerate(zip(marks, sells, strict=True), 2):
        change = wire_round_trip("ExecutionStateChange", state_change_record(
            change_id=f"chg-{sequence}", sequence=sequence, occurred_at=at(1), correlation_id="corr-001",
            cause_kind="COMMAND", cause_id="cmd_1", outcome=mark,
        ))
        assert change["ticket_transitions"] == [{"ticket_id": sell, "from_state": "PENDING_SUBMIT", "to_state": "SUBMITTED"}]
        assert [t["ticket"]["ticket_id"] for t in change["execution"]["tickets"]] == [sell]  # only what changed
        assert change["execution"]["events"][0]["seq"] == mark.first_row_seq
    assert change["execution"]["status"] == "SUBMITTED"


def test_state_change_of_an_order_event_lists_dependency_cascades(scenario: Scenario) -> None:
    outcome = scenario.last_event_outcome  # the GB sell cancelled after a partial fill
    decoded = wire_round_trip("ExecutionStateChange", state_change_record(
        change_id="chg-9", sequence=9, occurred_at=at(7), correlation_id=None,
        cause_kind="ORDER_EVENT", cause_id="ev-gb-cxl", outcome=outcome,
    ))
    assert decoded["execution_transition"] is None  # PARTIALLY_FILLED before and after
    # Only state moves: the scalings of the FX and the REIT buy stay PENDING_SUBMIT (seen in the tickets).
    assert decoded["ticket_transitions"] == [
        {"ticket_id": scenario.ids["sell_gb"], "from_state": "PARTIAL_FILL", "to_state": "CANCELLED"}]
    assert outcome.changes and len(outcome.changes) == 3
    # The delta carries the cancelled sell and the two tickets scaled and released, not the others.
    assert {t["ticket"]["ticket_id"] for t in decoded["execution"]["tickets"]} == {
        scenario.ids["sell_gb"], scenario.ids["fx"], scenario.ids["buy_reit"]}


def test_state_change_with_an_execution_transition_and_a_duplicate(scenario: Scenario) -> None:
    # the corp sell FILLED: the execution goes SUBMITTED -> PARTIALLY_FILLED; then its redelivery
    first_fill = scenario.outcomes[len(scenario.creation_outcomes) + 1]
    redelivered = fill(scenario.ids["sell_corp"], "ev-corp-1", "6000", "0.998", seconds=3, filled=True)
    duplicate = apply_order_event(first_fill.execution, redelivered, scenario.history)
    assert duplicate.duplicate
    with pytest.raises(ValueError, match="duplicate"):
        state_change_record(change_id="chg-x", sequence=4, occurred_at=at(3), correlation_id=None,
                            cause_kind="ORDER_EVENT", cause_id="ev-corp-1", outcome=duplicate)
    decoded = wire_round_trip("ExecutionStateChange", state_change_record(
        change_id="chg-3", sequence=3, occurred_at=at(3), correlation_id=None,
        cause_kind="ORDER_EVENT", cause_id="ev-corp-1", outcome=first_fill,
    ))
    assert decoded["execution_transition"] == {"from_state": "SUBMITTED", "to_state": "PARTIALLY_FILLED"}
    assert decoded["ticket_transitions"] == [
        {"ticket_id": scenario.ids["sell_corp"], "from_state": "SUBMITTED", "to_state": "FILLED"}]


def test_state_change_of_a_cancel_command(scenario: Scenario) -> None:
    cancel_sample = {**examples.SAMPLES[4][2], "execution_id": "exec_001", "issued_at": at(9)}
    command = wire_round_trip("ExecutionCommand", cancel_sample)
    cancel = cancel_request_from_record(command)
    outcome = request_cancel(scenario.execution, cancel, scenario.history)
    decoded = wire_round_trip("ExecutionStateChange", state_change_record(
        change_id="chg-10", sequence=10, occurred_at=at(9), correlation_id="corr-3",
        cause_kind="COMMAND", cause_id=cancel.command_id, outcome=outcome,
    ))
    # Both sells are over; the three others were never handed to the OMS: cancelled without release.
    assert decoded["ticket_transitions"] == [
        {"ticket_id": scenario.ids[name], "from_state": "PENDING_SUBMIT", "to_state": "CANCELLED"}
        for name in ("fx", "buy_reit", "buy_us")
    ]
    # RFC 7.1 precedence: a requested cancel with every ticket terminal and one cancelled wins over the fills.
    assert decoded["execution_transition"] == {"from_state": "PARTIALLY_FILLED", "to_state": "CANCELLED"}
    cancel_row = [e for e in decoded["execution"]["events"] if e["kind"] == "EXECUTION_CANCEL_REQUESTED"]
    assert cancel_row == [{"seq": cancel_row[0]["seq"], "kind": "EXECUTION_CANCEL_REQUESTED", "ticket_id": None,
                           "event_type": None, "event_id": None, "from_state": None, "to_state": None,
                           "reason": "client withdrew instruction", "occurred_at": at(9), "source": None}]
    assert decoded["execution"]["status"] == outcome.execution.state.value


# --- commands --------------------------------------------------------------------------------------------------


def test_create_command_with_an_inline_artifact() -> None:
    command = wire_round_trip("ExecutionCommand", examples.SAMPLES[2][2])
    request = create_command_from_record(command)

    assert isinstance(request, CreateCommand)
    assert request.policy == ExecutionPolicy(max_slippage_bps=Decimal("25"))
    assert request.origin == RequestOrigin(Actor("advisor_001", "ADVISOR_APP"), "idem-7f3a", "corr-1")
    assert (request.command_id, request.execution_id, request.issued_at) == ("cmd_1", "exec_20260218_abc", at(9))
    assert (request.proposal_id, request.version_no, request.request_hash) == ("prop_123", 2, "sha256:" + "ab" * 32)
    assert request.artifact_record == command["payload"]["artifact"]


def test_create_command_using_the_stored_artifact() -> None:
    request = create_command_from_record(wire_round_trip("ExecutionCommand", examples.SAMPLES[3][2]))
    assert request.artifact_record is None
    assert request.policy.dry_run and request.policy.time_in_force is TimeInForce.IOC


def test_cancel_command_becomes_a_cancel_request() -> None:
    command = wire_round_trip("ExecutionCommand", examples.SAMPLES[4][2])
    assert cancel_request_from_record(command) == CancelRequest(
        "cmd_3", at(50), Actor("advisor_001", "ADVISOR_APP"), "client withdrew instruction")
    no_reason = cancel_request_from_record(wire_round_trip("ExecutionCommand", examples.SAMPLES[5][2]))
    assert no_reason.reason is None


def test_commands_of_the_other_kind_are_refused() -> None:
    create = wire_round_trip("ExecutionCommand", examples.SAMPLES[2][2])
    cancel = wire_round_trip("ExecutionCommand", examples.SAMPLES[4][2])
    with pytest.raises(ValueError, match="not CANCEL_EXECUTION"):
        cancel_request_from_record(create)
    with pytest.raises(ValueError, match="not CREATE_EXECUTION"):
        create_command_from_record(cancel)
    # command_type and payload disagree (the encoder picks the branch from the fields present)
    with pytest.raises(ValueError, match="payload of the other kind"):
        create_command_from_record({**cancel, "command_type": "CREATE_EXECUTION"})


# --- boundaries -------------------------------------------------------------------------------------------------


def test_records_mapping_knows_nothing_of_kafka_clients_or_the_codec() -> None:
    tree = ast.parse(Path(translate.__file__).read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {m for m in modules if m and m.split(".")[0] in {"confluent_kafka", "kafka_client", "processor"}}
    assert not {m for m in modules if m and m.startswith("wire.") and m != "wire.errors"}  # no codec: values only
