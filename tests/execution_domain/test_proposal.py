from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from execution_domain.canonical import canonical_sha256
from execution_domain.proposal import (
    ArtifactInvalid,
    ProposalArtifact,
    ValidationProblem,
    compute_proposal_version_hash,
    parse_artifact,
    seal_artifact,
    validate_artifact,
)
from testkit.domain import SAMPLE_NAMES, SAMPLES_DIR, load_sample_raw

INTENTS = "trades_and_funding.intents"
BAD_HASH = "sha256:" + "f" * 64


def problems_of(raw: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p.path, p.code) for p in validate_artifact(raw)}


def resealed(raw: dict[str, Any]) -> dict[str, Any]:
    return seal_artifact(raw)


# --- samples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_artifact_is_valid(name: str) -> None:
    assert validate_artifact(load_sample_raw(name)) == ()


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_files_are_sealed_with_the_hash_of_their_content(name: str) -> None:
    """Set UPDATE_SAMPLES=1 to re-seal the sample files after editing them."""
    path = SAMPLES_DIR / f"{name}.json"
    raw = load_sample_raw(name)
    sealed_text = json.dumps(seal_artifact(raw), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SAMPLES") == "1":
        path.write_text(sealed_text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == sealed_text


def test_there_are_samples_for_the_rfc_scenarios_and_a_cash_flow() -> None:
    assert {"sgd_multi_currency", "rfc_accept_all", "rfc_fx_reject", "rfc_partial_then_fill"} <= set(SAMPLE_NAMES)
    assert any(
        intent["intent_type"] == "CASH_FLOW"
        for name in SAMPLE_NAMES
        for intent in load_sample_raw(name)["trades_and_funding"]["intents"]
    )


# --- hash --------------------------------------------------------------------------------------


def test_hash_is_sha256_of_the_canonical_artifact_without_its_hash_field() -> None:
    artifact = parse_artifact(load_sample_raw("rfc_accept_all"))
    content = artifact.to_primitive()
    del content["proposal_version_hash"]
    assert compute_proposal_version_hash(artifact) == canonical_sha256(content) == artifact.proposal_version_hash


def test_hash_ignores_key_order_and_decimal_spelling_but_not_content() -> None:
    raw = load_sample_raw("rfc_accept_all")
    respelled = copy.deepcopy(raw)
    respelled["trades_and_funding"]["intents"][1]["buy_amount"] = "1500.00"
    reordered = dict(reversed(list(respelled.items())))
    assert validate_artifact(reordered) == ()
    tampered = copy.deepcopy(raw)
    tampered["trades_and_funding"]["intents"][2]["quantity"] = "11"
    assert problems_of(tampered) == {("proposal_version_hash", "HASH_MISMATCH")}


def test_sealing_is_idempotent() -> None:
    raw = load_sample_raw("sgd_multi_currency")
    assert seal_artifact(raw) == raw


# --- semantic problems, one at a time ----------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _intent(index: int, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return _set(["trades_and_funding", "intents", index, field], value)


def _add_intent(intent: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["trades_and_funding"]["intents"].append(intent)


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(raw)

    return mutate


SGD_BUY = {
    "intent_type": "SECURITY_TRADE", "intent_id": "oi_buy_sg", "dependencies": [], "instrument_id": "SG_EQ",
    "side": "BUY", "quantity": "5", "currency": "SGD", "indicative_price": "3",
}
CASH = {"intent_type": "CASH_FLOW", "intent_id": "oi_cash", "dependencies": [], "currency": "SGD", "amount": "0",
        "description": "x"}

# rfc_accept_all: [0] SELL SGD, [1] FX USD/SGD depends on [0], [2] BUY USD depends on [1]
SEMANTIC_CASES = {
    "non-positive quantity": (_intent(0, "quantity", "-1"), {(f"{INTENTS}[0].quantity", "NON_POSITIVE_QUANTITY")}),
    "zero quantity": (_intent(2, "quantity", "0"), {(f"{INTENTS}[2].quantity", "NON_POSITIVE_QUANTITY")}),
    "zero price": (_intent(2, "indicative_price", "0"), {(f"{INTENTS}[2].indicative_price", "NON_POSITIVE_PRICE")}),
    "zero fx amount": (_intent(1, "buy_amount", "0"), {(f"{INTENTS}[1].buy_amount", "NON_POSITIVE_AMOUNT")}),
    "pair of other currencies": (_intent(1, "pair", "USD/HKD"), {(f"{INTENTS}[1].pair", "FX_PAIR_MISMATCH")}),
    "pair without slash": (_intent(1, "pair", "USDSGD"), {(f"{INTENTS}[1].pair", "FX_PAIR_MISMATCH")}),
    "fx buying what it sells": (
        _intent(1, "sell_currency", "USD"),
        {(f"{INTENTS}[1].sell_currency", "FX_SAME_CURRENCY"), (f"{INTENTS}[1].pair", "FX_PAIR_MISMATCH")},
    ),
    "foreign buy without fx": (_intent(2, "dependencies", []), {(f"{INTENTS}[2].dependencies", "UNFUNDED_FOREIGN_BUY")}),
    "unknown dependency": (
        _intent(2, "dependencies", ["oi_missing"]),
        {(f"{INTENTS}[2].dependencies[0]", "UNKNOWN_DEPENDENCY"), (f"{INTENTS}[2].dependencies", "UNFUNDED_FOREIGN_BUY")},
    ),
    "dependency listed twice": (
        _intent(1, "dependencies", ["oi_sell_sg_eq_etf", "oi_sell_sg_eq_etf"]),
        {(f"{INTENTS}[1].dependencies[1]", "DUPLICATE_DEPENDENCY")},
    ),
    "self dependency": (_intent(0, "dependencies", ["oi_sell_sg_eq_etf"]), {(f"{INTENTS}[0].dependencies", "DEPENDENCY_CYCLE")}),
    "two-intent cycle": (
        _intent(0, "dependencies", ["oi_fx_usd_sgd"]),
        {(f"{INTENTS}[0].dependencies", "DEPENDENCY_CYCLE"), (f"{INTENTS}[1].dependencies", "DEPENDENCY_CYCLE")},
    ),
    "sell depending on a buy": (
        _both(_add_intent(SGD_BUY), _intent(0, "dependencies", ["oi_buy_sg"])),
        {(f"{INTENTS}[0].dependencies[0]", "DEPENDENCY_ORDER")},
    ),
    "duplicate intent id": (
        _add_intent({**SGD_BUY, "intent_id": "oi_sell_sg_eq_etf"}),
        {(f"{INTENTS}[3].intent_id", "DUPLICATE_INTENT_ID")},
    ),
    "zero cash flow": (_add_intent(CASH), {(f"{INTENTS}[3].amount", "ZERO_AMOUNT")}),
    "no intents": (_set(["trades_and_funding", "intents"], []), {(INTENTS, "NO_INTENTS")}),
}


@pytest.mark.parametrize("case", SEMANTIC_CASES, ids=list(SEMANTIC_CASES))
def test_each_semantic_problem_is_reported_with_its_path(case: str) -> None:
    mutate, expected = SEMANTIC_CASES[case]
    raw = load_sample_raw("rfc_accept_all")
    mutate(raw)
    assert problems_of(resealed(raw)) == expected


def test_an_inverted_pair_quote_is_still_the_same_pair() -> None:
    raw = load_sample_raw("rfc_accept_all")
    _intent(1, "pair", "SGD/USD")(raw)
    assert problems_of(resealed(raw)) == set()


def test_unfunded_foreign_buy_is_only_a_problem_when_funding_is_claimed() -> None:
    raw = load_sample_raw("rfc_accept_all")
    _intent(2, "dependencies", [])(raw)
    raw["trades_and_funding"]["funding_claimed"] = False
    assert problems_of(resealed(raw)) == set()


def test_a_blocked_gate_decision_is_a_valid_artifact_that_is_not_execution_ready() -> None:
    raw = load_sample_raw("rfc_accept_all")
    raw["gate_decision"]["decision"] = "BLOCKED"
    artifact = parse_artifact(resealed(raw))
    assert not artifact.is_execution_ready


def test_all_semantic_problems_come_back_at_once() -> None:
    raw = {
        "proposal_id": "prop_bad",
        "version_no": 1,
        "proposal_version_hash": BAD_HASH,
        "portfolio_id": "pf",
        "base_currency": "SGD",
        "created_at": "2026-02-18T09:00:00Z",
        "gate_decision": {"decision": "EXECUTION_READY", "reasons": [], "decided_at": "2026-02-18T09:00:00Z"},
        "trades_and_funding": {
            "funding_claimed": True,
            "intents": [
                {**SGD_BUY, "intent_id": "a", "side": "SELL", "quantity": "0"},
                {**SGD_BUY, "intent_id": "a", "side": "SELL"},
                {
                    "intent_type": "FX_SPOT", "intent_id": "fx", "dependencies": ["ghost"], "pair": "EUR/SGD",
                    "buy_currency": "USD", "buy_amount": "100", "sell_currency": "SGD", "sell_amount_estimated": "135",
                },
                {**SGD_BUY, "intent_id": "b1", "currency": "USD", "dependencies": ["c2"]},
                {**SGD_BUY, "intent_id": "c2", "dependencies": ["b1"]},
            ],
        },
    }
    problems = validate_artifact(raw)
    assert {(p.path, p.code) for p in problems} == {
        (f"{INTENTS}[0].quantity", "NON_POSITIVE_QUANTITY"),
        (f"{INTENTS}[1].intent_id", "DUPLICATE_INTENT_ID"),
        (f"{INTENTS}[2].dependencies[0]", "UNKNOWN_DEPENDENCY"),
        (f"{INTENTS}[2].pair", "FX_PAIR_MISMATCH"),
        (f"{INTENTS}[3].dependencies", "DEPENDENCY_CYCLE"),
        (f"{INTENTS}[4].dependencies", "DEPENDENCY_CYCLE"),
        (f"{INTENTS}[3].dependencies", "UNFUNDED_FOREIGN_BUY"),
        ("proposal_version_hash", "HASH_MISMATCH"),
    }
    assert all(isinstance(p, ValidationProblem) and p.message for p in problems)
    with pytest.raises(ArtifactInvalid) as raised:
        parse_artifact(raw)
    assert raised.value.problems == problems


def test_all_structural_problems_come_back_at_once_with_paths() -> None:
    raw = load_sample_raw("rfc_accept_all")
    del raw["proposal_id"]
    raw["version_no"] = 0
    raw["surprise"] = True
    raw["base_currency"] = "sgd"
    raw["trades_and_funding"]["intents"][0]["quantity"] = 1.5
    raw["trades_and_funding"]["intents"][1]["intent_type"] = "SWAP"
    raw["trades_and_funding"]["intents"][2]["indicative_price"] = "1e2"
    del raw["trades_and_funding"]["intents"][2]["side"]
    assert {(p.path, p.code) for p in validate_artifact(raw)} == {
        ("proposal_id", "MISSING_FIELD"),
        ("version_no", "INVALID_VALUE"),
        ("surprise", "UNKNOWN_FIELD"),
        ("base_currency", "INVALID_VALUE"),
        (f"{INTENTS}[0].quantity", "INVALID_VALUE"),
        (f"{INTENTS}[1].intent_type", "UNKNOWN_INTENT_TYPE"),
        (f"{INTENTS}[2].indicative_price", "INVALID_VALUE"),
        (f"{INTENTS}[2].side", "MISSING_FIELD"),
    }


def test_parse_artifact_returns_an_immutable_model() -> None:
    artifact = parse_artifact(load_sample_raw("rfc_accept_all"))
    assert isinstance(artifact, ProposalArtifact)
    with pytest.raises(ValidationError):
        artifact.proposal_id = "other"
