from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import pytest

from execution_domain.canonical import canonical_sha256
from execution_domain.proposal import ProposalArtifact, Side, parse_artifact, seal_artifact
from execution_domain.tickets import (
    CashTransferTicket,
    FxSpotOrderTicket,
    SecurityOrderTicket,
    TicketType,
    generate_tickets,
    ticket_from_primitive,
    ticket_id_for,
    tickets_canonical_json,
    tickets_to_primitive,
)
from testkit.domain import GOLDEN_DIR, POLICY, REPO_ROOT, SAMPLE_NAMES, load_sample, load_sample_raw, policy_of


def golden_document(name: str) -> str:
    artifact = load_sample(name)
    tickets = generate_tickets(artifact, POLICY)
    document = {
        "sample": name,
        "proposal_id": artifact.proposal_id,
        "version_no": artifact.version_no,
        "proposal_version_hash": artifact.proposal_version_hash,
        "policy": POLICY.to_primitive(),
        "tickets": tickets_to_primitive(tickets),
        "tickets_sha256": canonical_sha256(tickets_to_primitive(tickets)),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_generated_tickets_match_the_golden_snapshot_byte_for_byte(name: str) -> None:
    """Set UPDATE_GOLDEN=1 to rewrite the snapshots after an intended change."""
    path = GOLDEN_DIR / f"{name}.tickets.json"
    generated = golden_document(name).encode("utf-8")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_bytes(generated)
    assert path.read_bytes() == generated


def test_tickets_are_byte_identical_across_processes_with_different_hash_seeds() -> None:
    script = (
        "from testkit.domain import POLICY, SAMPLE_NAMES, load_sample\n"
        "from execution_domain.tickets import generate_tickets, tickets_canonical_json\n"
        "for name in SAMPLE_NAMES:\n"
        "    print(tickets_canonical_json(generate_tickets(load_sample(name), POLICY)))\n"
    )
    here = "\n".join(tickets_canonical_json(generate_tickets(load_sample(n), POLICY)) for n in SAMPLE_NAMES) + "\n"
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        output = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True)
        assert output.stdout == here


def test_tickets_are_ordered_cash_flow_sell_fx_buy_and_stable_within_a_group() -> None:
    artifact = load_sample("usd_cash_flow_eur")
    tickets = generate_tickets(artifact, POLICY)
    assert [t.intent_id for t in tickets] == [
        "oi_cash_topup",
        "oi_sell_us_tbond",
        "oi_fx_eur_usd",
        "oi_buy_us_div_etf",
        "oi_buy_eu_eq_etf",
    ]
    sgd = generate_tickets(load_sample("sgd_multi_currency"), POLICY)
    # The SGD REIT BUY precedes the FX in the artifact; tickets put FX first, BUYs in artifact order.
    assert [t.intent_id for t in sgd] == [
        "oi_sell_sggb_2031",
        "oi_sell_sgcorp_2029",
        "oi_fx_usd_sgd",
        "oi_buy_sg_reit",
        "oi_buy_us_eq_etf",
    ]


def test_ticket_id_is_tkt_plus_sha1_of_version_hash_and_intent_id() -> None:
    version_hash = "sha256:" + "a" * 64
    expected = "tkt_" + hashlib.sha1((version_hash + "oi_1").encode("utf-8")).hexdigest()[:12]
    assert ticket_id_for(version_hash, "oi_1") == expected
    artifact = load_sample("rfc_accept_all")
    for ticket in generate_tickets(artifact, POLICY):
        assert ticket.ticket_id == ticket_id_for(artifact.proposal_version_hash, ticket.intent_id)


def test_the_first_attempt_gives_exactly_the_rfc_6_2_ids() -> None:
    for name in SAMPLE_NAMES:
        artifact = load_sample(name)
        first = generate_tickets(artifact, POLICY, 1)
        assert first == generate_tickets(artifact, POLICY)
        for ticket in first:
            seed = (artifact.proposal_version_hash + ticket.intent_id).encode("utf-8")
            assert ticket.ticket_id == "tkt_" + hashlib.sha1(seed).hexdigest()[:12]


@pytest.mark.parametrize("attempt", [2, 3, 17])
def test_a_later_attempt_gives_other_ids_by_a_fixed_rule(attempt: int) -> None:
    artifact = load_sample("sgd_multi_currency")
    first, later = generate_tickets(artifact, POLICY), generate_tickets(artifact, POLICY, attempt)
    for ticket in later:
        seed = f"{artifact.proposal_version_hash}{ticket.intent_id}#{attempt}".encode()
        assert ticket.ticket_id == "tkt_" + hashlib.sha1(seed).hexdigest()[:12]
        assert ticket.ticket_id == ticket_id_for(artifact.proposal_version_hash, ticket.intent_id, attempt)
    assert {t.ticket_id for t in first}.isdisjoint({t.ticket_id for t in later})
    assert later == generate_tickets(artifact, POLICY, attempt)  # deterministic: a replay gives the same ids
    # Everything but the ids is the same, and dependencies name the same attempt's tickets.
    by_intent = {t.intent_id: t.ticket_id for t in later}
    for one, other in zip(first, later, strict=True):
        assert one.intent_id == other.intent_id
        assert other.dependencies == tuple(
            by_intent[next(t.intent_id for t in first if t.ticket_id == d)] for d in one.dependencies)
        same = {k: v for k, v in one.to_primitive().items() if k not in ("ticket_id", "dependencies")}
        assert same == {k: v for k, v in other.to_primitive().items() if k not in ("ticket_id", "dependencies")}


def test_attempts_never_share_a_ticket_id() -> None:
    artifact = load_sample("usd_cash_flow_eur")
    ids = [t.ticket_id for attempt in range(1, 21) for t in generate_tickets(artifact, POLICY, attempt)]
    assert len(ids) == len(set(ids)) == 20 * 5


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_numbers_start_at_one(attempt: int) -> None:
    with pytest.raises(ValueError):
        generate_tickets(load_sample("rfc_accept_all"), POLICY, attempt)


def test_dependencies_are_mapped_from_intent_ids_to_ticket_ids_in_order() -> None:
    artifact = load_sample("sgd_multi_currency")
    tickets = {t.intent_id: t for t in generate_tickets(artifact, POLICY)}
    fx = tickets["oi_fx_usd_sgd"]
    assert fx.dependencies == (tickets["oi_sell_sggb_2031"].ticket_id, tickets["oi_sell_sgcorp_2029"].ticket_id)
    assert tickets["oi_buy_us_eq_etf"].dependencies == (fx.ticket_id,)
    assert tickets["oi_sell_sggb_2031"].dependencies == ()


def test_a_new_proposal_version_gives_new_ticket_ids() -> None:
    raw = load_sample_raw("rfc_accept_all")
    raw["version_no"] = 3
    v3 = parse_artifact(seal_artifact(raw))
    v2 = load_sample("rfc_accept_all")
    def ids(artifact: ProposalArtifact) -> set[str]:
        return {t.ticket_id for t in generate_tickets(artifact, POLICY)}

    assert ids(v2).isdisjoint(ids(v3))


def test_security_ticket_has_the_rfc_6_3_1_schema_with_policy_fields() -> None:
    policy = policy_of(max_slippage_bps="30", time_in_force="GTC", order_type="LIMIT")
    buy = generate_tickets(load_sample("rfc_accept_all"), policy)[2]
    primitive = buy.to_primitive()
    assert set(primitive) == {
        "ticket_id", "ticket_type", "intent_id", "instrument_id", "side", "quantity", "currency",
        "order_type", "time_in_force", "dependencies", "constraints",
    }
    assert primitive["ticket_type"] == "SECURITY_ORDER"
    assert (primitive["side"], primitive["quantity"], primitive["currency"]) == ("BUY", "10", "USD")
    assert (primitive["order_type"], primitive["time_in_force"]) == ("LIMIT", "GTC")
    assert primitive["constraints"] == {"max_slippage_bps": "30"}


def test_fx_ticket_has_the_rfc_6_3_2_schema() -> None:
    fx = generate_tickets(load_sample("rfc_accept_all"), POLICY)[1]
    assert fx.to_primitive() == {
        "ticket_id": fx.ticket_id,
        "ticket_type": "FX_SPOT_ORDER",
        "intent_id": "oi_fx_usd_sgd",
        "pair": "USD/SGD",
        "buy_currency": "USD",
        "buy_amount": "1500",
        "sell_currency": "SGD",
        "sell_amount_estimated": "2025",
        "order_type": "MARKET",
        "time_in_force": "DAY",
        "dependencies": [generate_tickets(load_sample("rfc_accept_all"), POLICY)[0].ticket_id],
    }


def test_cash_flow_becomes_a_cash_transfer_ticket_first() -> None:
    first = generate_tickets(load_sample("usd_cash_flow_eur"), POLICY)[0]
    assert isinstance(first, CashTransferTicket)
    assert first.to_primitive()["ticket_type"] == TicketType.CASH_TRANSFER == "CASH_TRANSFER"
    assert first.order_quantity == Decimal("25000")


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_tickets_round_trip_through_their_primitive_form(name: str) -> None:
    tickets = generate_tickets(load_sample(name), POLICY)
    assert tuple(ticket_from_primitive(json.loads(json.dumps(t.to_primitive()))) for t in tickets) == tickets


def _security(quantity: str) -> SecurityOrderTicket:
    return SecurityOrderTicket("tkt_x", "oi_x", "X", Side.BUY, Decimal(quantity), "USD", POLICY.order_type,
                               POLICY.time_in_force, (), Decimal(25))


def _fx(buy: str, sell: str, buy_ccy: str = "USD", sell_ccy: str = "SGD") -> FxSpotOrderTicket:
    return FxSpotOrderTicket("tkt_f", "oi_f", f"{buy_ccy}/{sell_ccy}", buy_ccy, Decimal(buy), sell_ccy, Decimal(sell),
                             POLICY.order_type, POLICY.time_in_force, ())


@pytest.mark.parametrize(
    ("quantity", "fraction", "expected"),
    [("20", Fraction(6000, 10248), "11"), ("3", Fraction(1, 3), "1"), ("10", Fraction(99, 100), "9"), ("1", Fraction(1, 2), "0")],
)
def test_security_quantity_scales_to_whole_units_rounded_down_exactly(quantity: str, fraction: Fraction, expected: str) -> None:
    assert _security(quantity).scaled_quantity(fraction) == Decimal(expected)


def test_fx_amount_scales_to_the_currency_minor_unit_and_keeps_the_rate() -> None:
    fx = _fx("1500", "2025")
    assert fx.scaled_quantity(Fraction(1, 3)) == Decimal("500")
    assert fx.scaled_quantity(Fraction(2, 7)) == Decimal("428.57")
    scaled = fx.with_order_quantity(Decimal("428.57"))
    assert (scaled.buy_amount, scaled.sell_amount_estimated) == (Decimal("428.57"), Decimal("578.56"))
    assert _fx("1000", "150000", "JPY", "USD").scaled_quantity(Fraction(1, 3)) == Decimal("333")
    assert _fx("1000", "3000", "KWD", "USD").scaled_quantity(Fraction(1, 3)) == Decimal("333.333")


def test_cash_transfer_scaling_keeps_the_direction() -> None:
    outflow = CashTransferTicket("tkt_c", "oi_c", "USD", Decimal("-100"), POLICY.order_type, POLICY.time_in_force, ())
    assert outflow.with_order_quantity(Decimal("40")).amount == Decimal("-40")


def test_cash_transfer_scales_by_its_absolute_amount_in_minor_units() -> None:
    outflow = CashTransferTicket("tkt_c", "oi_c", "USD", Decimal("-100.01"), POLICY.order_type, POLICY.time_in_force, ())
    assert outflow.scaled_quantity(Fraction(1, 3)) == Decimal("33.33")
