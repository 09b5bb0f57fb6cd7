from __future__ import annotations

import json

from execution_domain.definition import ExecutionDefinition
from testkit.domain import new_execution


def test_dependants_are_the_reverse_of_dependencies() -> None:
    definition = new_execution("sgd_multi_currency").execution.definition
    by_intent = {t.intent_id: t.ticket_id for t in definition.tickets}
    assert definition.dependants[by_intent["oi_fx_usd_sgd"]] == (by_intent["oi_buy_us_eq_etf"],)
    assert set(definition.dependants[by_intent["oi_sell_sggb_2031"]]) == {by_intent["oi_fx_usd_sgd"], by_intent["oi_buy_sg_reit"]}
    assert definition.dependants[by_intent["oi_buy_us_eq_etf"]] == ()


def test_definition_round_trips_and_rebuilds_its_indexes() -> None:
    definition = new_execution("usd_cash_flow_eur").execution.definition
    restored = ExecutionDefinition.from_primitive(json.loads(json.dumps(definition.to_primitive())))
    assert restored == definition
    assert restored.dependants == definition.dependants and restored.tickets_by_id == definition.tickets_by_id


def test_definition_keeps_its_attempt_and_a_stored_one_without_it_is_the_first() -> None:
    definition = new_execution("rfc_accept_all", attempt=2).execution.definition
    primitive = json.loads(json.dumps(definition.to_primitive()))
    assert primitive["attempt"] == 2 and ExecutionDefinition.from_primitive(primitive) == definition
    first = new_execution("rfc_accept_all").execution.definition
    stored_before_attempts = {k: v for k, v in first.to_primitive().items() if k != "attempt"}
    restored = ExecutionDefinition.from_primitive(stored_before_attempts)
    assert restored == first and restored.attempt == 1


def test_the_graph_is_derived_not_stored() -> None:
    definition = new_execution("sgd_multi_currency").execution.definition
    assert "graph" not in definition.to_primitive()
    assert [definition.graph.position[t.ticket_id] for t in definition.tickets] == list(range(5))
