"""The ticket dependency graph of an execution, laid out for drawing as SVG.

Tickets are placed in layers by dependency depth (the longest chain of dependencies before them:
SELLs with nothing to wait for in layer 0, the FX they fund in layer 1, the BUYs that FX funds in
layer 2), left to right; within a layer, by the mean row of their dependencies (fewer crossings),
else in ticket order. Each edge runs from a dependency to the ticket that waits on it.

An execution of up to `collapse_above` tickets is drawn ticket by ticket. A larger one (the RFC
allows 1,000) is drawn collapsed: one node per layer, kind and state, with its count, and one
edge per pair of groups with the number of dependencies it stands for; the ticket table below
the graph lists every ticket. Pure: no HTTP, no Kafka.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NODE_W = 230
NODE_H = 62
COL_GAP = 90
ROW_GAP = 14
PAD = 12
COLLAPSE_ABOVE = 60
STATE_ORDER = ("PENDING_SUBMIT", "SUBMITTED", "ACCEPTED", "PARTIAL_FILL", "PENDING_CANCEL", "FILLED", "CANCELLED",
               "REJECTED")


@dataclass(frozen=True, slots=True)
class Node:
    key: str  # a ticket id, or `group:<layer>:<kind>:<state>` when collapsed
    kind: str  # SELL, BUY, FX or CASH
    title: str  # e.g. "SELL SG_GOVT_BOND_2031"
    status: str
    detail: str  # filled / ordered and average price, or the group's count
    layer: int
    row: int
    x: int
    y: int
    count: int = 1  # tickets it stands for


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str  # SVG path data
    count: int = 1


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: int
    height: int
    collapsed: bool
    ticket_count: int

    @property
    def layers(self) -> int:
        return 1 + max((node.layer for node in self.nodes), default=-1)


def ticket_kind(ticket: Mapping[str, Any]) -> str:
    kind = ticket.get("ticket_type")
    if kind == "SECURITY_ORDER":
        return str(ticket.get("side") or "ORDER")
    if kind == "FX_SPOT_ORDER":
        return "FX"
    return "CASH"


def ticket_title(ticket: Mapping[str, Any]) -> str:
    kind = ticket_kind(ticket)
    if ticket.get("ticket_type") == "SECURITY_ORDER":
        return f"{kind} {ticket.get('instrument_id')}"
    if kind == "FX":
        return f"FX buy {ticket.get('buy_currency')} / sell {ticket.get('sell_currency')}"
    return f"CASH {ticket.get('currency')}"


def ticket_detail(ticket: Mapping[str, Any]) -> str:
    detail = f"{ticket.get('filled_qty')} / {ticket.get('order_quantity')}"
    if ticket.get("avg_price") is not None:
        detail += f" @ {ticket['avg_price']}"
    return detail


def depths(tickets: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Each ticket's layer: 0 without (known) dependencies, else one more than its deepest
    dependency. Kahn's order, so a chain of 1,000 needs no recursion; tickets on a cycle (never
    generated, but a record could say so) go one layer past the rest."""
    ids = [t["ticket_id"] for t in tickets]
    known = set(ids)
    deps = {t["ticket_id"]: [d for d in t.get("dependencies") or () if d in known and d != t["ticket_id"]]
            for t in tickets}
    waiting = {tid: len(set(ds)) for tid, ds in deps.items()}
    dependents: dict[str, list[str]] = defaultdict(list)
    for tid, ds in deps.items():
        for dep in set(ds):
            dependents[dep].append(tid)
    depth: dict[str, int] = {}
    ready = [tid for tid in ids if waiting[tid] == 0]
    while ready:
        tid = ready.pop()
        depth[tid] = 1 + max((depth[d] for d in deps[tid]), default=-1)
        for follower in dependents[tid]:
            waiting[follower] -= 1
            if waiting[follower] == 0:
                ready.append(follower)
    beyond = 1 + max(depth.values(), default=-1)
    for tid in ids:
        depth.setdefault(tid, beyond)
    return depth


def _edge_path(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    middle = (x1 + x2) // 2
    return f"M{x1} {y1} C{middle} {y1} {middle} {y2} {x2 - 6} {y2}"


def _place(layer: int, row: int) -> tuple[int, int]:
    return PAD + layer * (NODE_W + COL_GAP), PAD + row * (NODE_H + ROW_GAP)


def layout(tickets: Sequence[Mapping[str, Any]], *, collapse_above: int = COLLAPSE_ABOVE) -> Graph:
    """The graph of rendered tickets (`gateway.views.ticket_view`)."""
    depth = depths(tickets)
    by_id = {t["ticket_id"]: t for t in tickets}
    collapsed = len(tickets) > collapse_above
    if collapsed:
        return _collapsed(tickets, depth)
    layers: dict[int, list[str]] = defaultdict(list)
    for ticket in tickets:
        layers[depth[ticket["ticket_id"]]].append(ticket["ticket_id"])
    row_of: dict[str, int] = {}
    nodes: dict[str, Node] = {}
    for layer in sorted(layers):
        members = layers[layer]
        if layer:
            def barycentre(tid: str) -> float:
                rows = [row_of[d] for d in by_id[tid].get("dependencies") or () if d in row_of]
                return sum(rows) / len(rows) if rows else float("inf")
            members = sorted(members, key=lambda tid: (barycentre(tid), members.index(tid)))
        for row, tid in enumerate(members):
            row_of[tid] = row
            ticket = by_id[tid]
            x, y = _place(layer, row)
            nodes[tid] = Node(tid, ticket_kind(ticket), ticket_title(ticket), str(ticket.get("status")),
                              ticket_detail(ticket), layer, row, x, y)
    edges = [Edge(dep, tid, _edge_path(nodes[dep], nodes[tid]))
             for tid in (t["ticket_id"] for t in tickets)
             for dep in dict.fromkeys(by_id[tid].get("dependencies") or ()) if dep in nodes and dep != tid]
    return _graph(list(nodes.values()), edges, collapsed=False, ticket_count=len(tickets))


def _collapsed(tickets: Sequence[Mapping[str, Any]], depth: Mapping[str, int]) -> Graph:
    group_of: dict[str, str] = {}
    members: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ticket in tickets:
        kind = ticket_kind(ticket)
        key = f"group:{depth[ticket['ticket_id']]}:{kind}:{ticket.get('status')}"
        group_of[ticket["ticket_id"]] = key
        members[key].append(ticket)

    def order(key: str) -> tuple[int, str, int]:
        _, layer, kind, status = key.split(":", 3)
        return int(layer), kind, STATE_ORDER.index(status) if status in STATE_ORDER else len(STATE_ORDER)

    rows: dict[int, int] = defaultdict(int)
    nodes: dict[str, Node] = {}
    for key in sorted(members, key=order):
        layer, kind, status = int(key.split(":")[1]), key.split(":")[2], key.split(":", 3)[3]
        group = members[key]
        row = rows[layer]
        rows[layer] += 1
        x, y = _place(layer, row)
        titles = {ticket_title(t) for t in group}
        title = titles.pop() if len(titles) == 1 else f"{kind} ({len(group)} tickets)"
        detail = ticket_detail(group[0]) if len(group) == 1 else f"{len(group)} tickets {status}"
        nodes[key] = Node(key, kind, title, status, detail, layer, row, x, y, count=len(group))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for ticket in tickets:
        for dep in dict.fromkeys(ticket.get("dependencies") or ()):
            if dep in group_of and dep != ticket["ticket_id"]:
                counts[(group_of[dep], group_of[ticket["ticket_id"]])] += 1
    edges = [Edge(src, dst, _edge_path(nodes[src], nodes[dst]), count) for (src, dst), count in counts.items()]
    return _graph(list(nodes.values()), edges, collapsed=True, ticket_count=len(tickets))


def _graph(nodes: list[Node], edges: list[Edge], *, collapsed: bool, ticket_count: int) -> Graph:
    width = max((n.x + NODE_W for n in nodes), default=0) + PAD
    height = max((n.y + NODE_H for n in nodes), default=0) + PAD
    return Graph(tuple(nodes), tuple(edges), width, height, collapsed, ticket_count)
