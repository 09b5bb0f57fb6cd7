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
