"""The dependency graph's layout (gateway.console.graph): layers by dependency depth, every edge
pointing right, and large executions collapsed into groups that still count every ticket."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.console.graph import COLLAPSE_ABOVE, NODE_W, depths, layout


def ticket(ticket_id: str, *dependencies: str, side: str = "SELL", status: str = "PENDING_SUBMIT",
           kind: str = "SECURITY_ORDER") -> dict[str, Any]:
    return {"ticket_id": ticket_id, "ticket_type": kind, "side": side, "instrument_id": f"INS_{ticket_id}",
            "buy_currency": "USD", "sell_currency": "SGD", "dependencies": list(dependencies), "status": status,
            "order_quantity": "100", "filled_qty": "40", "avg_price": "1.5"}


@st.composite
def dags(draw: st.DrawFn, most: int = 150) -> list[dict[str, Any]]:
    """Tickets whose dependencies are earlier tickets (a DAG), with kinds and states."""
    count = draw(st.integers(1, most))
    tickets = []
    for index in range(count):
        deps = draw(st.lists(st.integers(0, index - 1), max_size=3, unique=True)) if index else []
        tickets.append(ticket(f"t{index}", *(f"t{d}" for d in deps),
                              side=draw(st.sampled_from(["SELL", "BUY"])),
                              status=draw(st.sampled_from(["PENDING_SUBMIT", "SUBMITTED", "FILLED", "CANCELLED"]))))
    return tickets


def test_graph_sell_fx_buy_chain_lays_out_three_layers_left_to_right() -> None:
    tickets = [ticket("buy", "fx", side="BUY"), ticket("fx", "sell", kind="FX_SPOT_ORDER"), ticket("sell")]
    graph = layout(tickets)
    layer = {node.key: node.layer for node in graph.nodes}
    assert layer == {"sell": 0, "fx": 1, "buy": 2}
    assert {(e.source, e.target) for e in graph.edges} == {("sell", "fx"), ("fx", "buy")}
    assert {node.key: node.title for node in graph.nodes}["fx"] == "FX buy USD / sell SGD"
    assert all(node.detail == "40 / 100 @ 1.5" for node in graph.nodes)
    assert not graph.collapsed


def test_graph_cycle_or_unknown_dependency_never_loops_and_places_every_ticket() -> None:
    tickets = [ticket("a", "b"), ticket("b", "a"), ticket("c", "missing"), ticket("d", "d")]
    assert depths(tickets) == {"a": 1, "b": 1, "c": 0, "d": 0}
    assert len(layout(tickets).nodes) == 4


def test_graph_chain_of_a_thousand_tickets_needs_no_recursion() -> None:
    tickets = [ticket("t0")] + [ticket(f"t{i}", f"t{i - 1}") for i in range(1, 1000)]
    assert depths(tickets)["t999"] == 999


@settings(max_examples=60, deadline=None)
@given(dags())
def test_graph_any_dag_every_edge_points_right_and_every_ticket_is_drawn_once(tickets: list[dict[str, Any]]) -> None:
    graph = layout(tickets)
    assert sum(node.count for node in graph.nodes) == len(tickets)
    position = {node.key: node for node in graph.nodes}
    for edge in graph.edges:
        assert position[edge.source].layer < position[edge.target].layer
        assert position[edge.source].x + NODE_W < position[edge.target].x
    spots = [(node.x, node.y) for node in graph.nodes]
    assert len(spots) == len(set(spots))  # no two nodes on one spot
    assert graph.collapsed == (len(tickets) > COLLAPSE_ABOVE)
    if not graph.collapsed:
        expected = {(d, t["ticket_id"]) for t in tickets for d in t["dependencies"]}
        assert {(e.source, e.target) for e in graph.edges} == expected
    else:
        assert sum(e.count for e in graph.edges) == sum(len(t["dependencies"]) for t in tickets)


def test_graph_thousand_tickets_collapse_to_a_few_groups_by_layer_kind_and_state() -> None:
    sells = [ticket(f"s{i}", status="FILLED" if i % 2 else "SUBMITTED") for i in range(400)]
    fx = [ticket("fx", *(f"s{i}" for i in range(400)), kind="FX_SPOT_ORDER")]
    buys = [ticket(f"b{i}", "fx", side="BUY") for i in range(599)]
    graph = layout(sells + fx + buys)
    assert graph.collapsed
    counts = {node.key: node.count for node in graph.nodes}
    assert counts == {"group:0:SELL:SUBMITTED": 200, "group:0:SELL:FILLED": 200, "group:1:FX:PENDING_SUBMIT": 1,
                      "group:2:BUY:PENDING_SUBMIT": 599}
    assert {(e.source, e.target): e.count for e in graph.edges} == {
        ("group:0:SELL:SUBMITTED", "group:1:FX:PENDING_SUBMIT"): 200,
        ("group:0:SELL:FILLED", "group:1:FX:PENDING_SUBMIT"): 200,
        ("group:1:FX:PENDING_SUBMIT", "group:2:BUY:PENDING_SUBMIT"): 599}
