"""The operator console in a real headless Chromium against a real processor and gateway on the
real broker: sign-in, the list, the graph, live updates, dead letters, and what a browser without
a session or a form without its CSRF token gets."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, Route, expect

from execution_domain import parse_artifact
from testkit.browser import screenshot, sign_in
from testkit.gateway import TOKEN, Stack, create_body, event_body, new_key, sign, unique_proposal
from testkit.processor import wait_until
from wire import records as translate
from wire import serde

pytestmark = pytest.mark.integration


def created(stack: Stack, sample: str = "sgd_multi_currency", label: str = "console") -> dict[str, Any]:
    """An execution created through the API (no OMS answers: its released tickets wait)."""
    proposal = unique_proposal(sample, label)
    stack.publish(proposal)
    response = stack.client.create(create_body(proposal), new_key(label))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def settled(stack: Stack, execution_id: str) -> dict[str, Any]:
    """The execution once every ticket that can be released was (nothing else moves without an OMS)."""
    return stack.wait_execution(execution_id, lambda body: all(
        t["status"] != "PENDING_SUBMIT" for t in body["tickets"] if not t["dependencies"]))


def test_console_sign_in_with_an_api_token_opens_the_executions_list(console_stack: Stack, page: Page) -> None:
    sign_in(page, console_stack.gateway.url, TOKEN)
    expect(page.locator("h1")).to_contain_text("Executions")
    expect(page.locator(".who")).to_have_text("advisor-e2e")
    cookies = page.context.cookies()
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [("console-session", True, "Strict")]
    assert TOKEN not in page.url and TOKEN not in page.content()
    assert page.evaluate("() => JSON.stringify(window.localStorage) + document.cookie") == "{}"


def test_console_sign_in_with_a_wrong_token_is_refused(console_stack: Stack, page: Page) -> None:
    page.goto(f"{console_stack.gateway.url}/console/login")
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("That token is not valid.")
    assert page.context.cookies() == []


def test_console_list_shows_executions_created_through_the_api_newest_first(console_stack: Stack, page: Page,
                                                                           tmp_path: Path) -> None:
    first = created(console_stack, "rfc_accept_all", "list")
    second = created(console_stack, "sgd_multi_currency", "list")
    sign_in(page, console_stack.gateway.url, TOKEN)
    rows = page.locator("#rows tr[data-execution-id]")
    ids = rows.evaluate_all("rows => rows.map(r => r.dataset.executionId)")
    assert ids.index(second["execution_id"]) < ids.index(first["execution_id"])
    row = page.locator(f"tr[data-execution-id='{second['execution_id']}']")
    expect(row).to_contain_text(second["proposal_id"])
    screenshot(page, "console-list.png", tmp_path)

    page.fill("input[name=proposal_id]", first["proposal_id"])
    page.click(".filters button[type=submit]")
    expect(page.locator("#rows tr[data-execution-id]")).to_have_count(1)
    expect(page.locator("#rows")).to_contain_text(first["execution_id"])


def test_console_list_adds_an_execution_created_while_it_is_open(console_stack: Stack, page: Page) -> None:
    sign_in(page, console_stack.gateway.url, TOKEN)
    expect(page.locator("h1 .live")).not_to_have_class(re.compile("off"))
    late = created(console_stack, "rfc_accept_all", "late")
    expect(page.locator(f"#rows tr[data-execution-id='{late['execution_id']}']")).to_have_count(1)


def test_console_execution_page_draws_the_dependency_graph_with_its_edges_and_states(console_stack: Stack,
                                                                                     page: Page, tmp_path: Path) -> None:
    execution = settled(console_stack, created(console_stack)["execution_id"])
    sign_in(page, console_stack.gateway.url, TOKEN, f"/console/executions/{execution['execution_id']}")
    tickets = {t["ticket_id"]: t for t in execution["tickets"]}
    nodes = page.locator("svg g.node")
    expect(nodes).to_have_count(len(tickets))
    drawn = dict(nodes.evaluate_all("nodes => nodes.map(n => [n.dataset.node, n.dataset.status])"))
    assert drawn == {tid: t["status"] for tid, t in tickets.items()}
    edges = {tuple(e) for e in page.locator("svg path.edge").evaluate_all(
        "edges => edges.map(e => [e.dataset.from, e.dataset.to])")}
    assert edges == {(dep, tid) for tid, t in tickets.items() for dep in t["dependencies"]}
    kinds = {t["ticket_type"] for t in tickets.values()}
    assert kinds == {"SECURITY_ORDER", "FX_SPOT_ORDER"}  # SELL -> FX -> BUY
    # Layers left to right: every edge goes from a node to one further right.
    x = {key: page.locator(f"g.node[data-node='{key}']").bounding_box()["x"] for key in tickets}  # type: ignore[index]
    assert all(x[dep] < x[tid] for dep, tid in edges)
    expect(page.locator("#open-tickets")).to_contain_text(f"{execution['open_ticket_count']} of {len(tickets)}")
    expect(page.locator("#events tr").first).to_contain_text("command")  # its cause: the create command
    screenshot(page, "console-execution.png", tmp_path)


def test_console_fill_arriving_while_the_page_is_open_appears_without_reload(console_stack: Stack, page: Page) -> None:
    execution = settled(console_stack, created(console_stack, "sgd_multi_currency", "live")["execution_id"])
    execution_id = execution["execution_id"]
    sell = next(t for t in execution["tickets"] if not t["dependencies"])
    sign_in(page, console_stack.gateway.url, TOKEN, f"/console/executions/{execution_id}")
    expect(page.locator(".head .live, h2 .live").first).not_to_have_class(re.compile("off"))
    page.evaluate("() => { window.notReloaded = true; }")
    node = page.locator(f"g.node[data-node='{sell['ticket_id']}']")
    expect(node).to_have_attribute("data-status", sell["status"])

    event_id = f"fill-{uuid.uuid4().hex[:8]}"
    raw = event_body(sell["ticket_id"], "FILLED", event_id=event_id, external_order_id="OMS-live-1",
                     details={"filled_qty": sell["order_quantity"], "avg_price": "101.25"})
    response = console_stack.client.post_event(execution_id, raw, sign(raw))
    assert response.status_code == 202, response.text

    expect(node).to_have_attribute("data-status", "FILLED")
    expect(node).to_contain_text("@ 101.25")
    expect(page.locator("#events")).to_contain_text(f"OMS event {event_id}")
    assert page.evaluate("() => window.notReloaded") is True


def test_console_change_made_before_the_live_stream_connects_appears_once_it_connects(console_stack: Stack,
                                                                                     page: Page) -> None:
    execution = settled(console_stack, created(console_stack, "sgd_multi_currency", "gap")["execution_id"])
    execution_id = execution["execution_id"]
    sell = next(t for t in execution["tickets"] if not t["dependencies"])
    held: list[Route] = []

    def hold(route: Route) -> None:  # the stream's request waits until continued
        held.append(route)

    page.route("**/console/stream*", hold)
    sign_in(page, console_stack.gateway.url, TOKEN, f"/console/executions/{execution_id}")
    node = page.locator(f"g.node[data-node='{sell['ticket_id']}']")
    expect(node).to_have_attribute("data-status", sell["status"])
    for _ in range(200):  # route handlers run while Playwright waits, not during time.sleep
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the page never asked for its live stream"
    expect(page.locator("h2 .live")).to_have_class(re.compile("off"))  # not live until the stream opens

    # The fill lands after the page was rendered and before its stream subscribed: no event for it.
    raw = event_body(sell["ticket_id"], "FILLED", event_id=f"gap-{uuid.uuid4().hex[:8]}",
                     external_order_id="OMS-gap-1",
                     details={"filled_qty": sell["order_quantity"], "avg_price": "99.5"})
    assert console_stack.client.post_event(execution_id, raw, sign(raw)).status_code == 202
    console_stack.wait_execution(execution_id, lambda body: any(
        t["ticket_id"] == sell["ticket_id"] and t["status"] == "FILLED" for t in body["tickets"]))
    assert node.get_attribute("data-status") == sell["status"]  # the page is stale until its stream opens

    held[0].continue_()
    expect(page.locator("h2 .live")).not_to_have_class(re.compile("off"))
    expect(node).to_have_attribute("data-status", "FILLED")


def test_console_dead_letters_page_shows_a_poison_record_decoded_where_it_decodes(console_stack: Stack,
                                                                                page: Page) -> None:
    harness = console_stack.harness
    marker = uuid.uuid4().hex[:8]
    harness.produce(harness.topics.order_events, f"exec_poison_{marker}", b"\x00not avro " + marker.encode())
    proposal = unique_proposal("rfc_accept_all", f"tampered{marker}")
    record = translate.artifact_to_record(parse_artifact(proposal))
    record["portfolio_id"] = f"pf_tampered_{marker}"  # after sealing: its hash no longer matches
    harness.produce(harness.topics.approved_proposals, proposal["proposal_id"], serde.encode("ApprovedProposal", record))

    sign_in(page, console_stack.gateway.url, TOKEN, "/console/dead-letters")

    def shown() -> bool:
        page.reload()
        text = page.locator("main").inner_text()
        return f"exec_poison_{marker}" in text and f"pf_tampered_{marker}" in text
    wait_until(shown, 60, interval_s=0.5, what="both dead letters on the page")
    poison = page.locator("article.dead-letter", has_text=f"exec_poison_{marker}")
    expect(poison).to_contain_text(harness.topics.order_events)
    expect(poison.locator(".note")).to_contain_text("does not decode")
    tampered = page.locator("article.dead-letter", has_text=f"pf_tampered_{marker}")
    expect(tampered.locator("pre.decoded")).to_contain_text(proposal["proposal_id"])
    expect(tampered.locator(".reason")).not_to_be_empty()


def test_console_unauthenticated_requests_get_the_sign_in_page_never_data(console_stack: Stack, page: Page) -> None:
    execution = created(console_stack, "rfc_accept_all", "anon")
    execution_id, proposal_id = execution["execution_id"], execution["proposal_id"]
    base = console_stack.gateway.url
    for path in ("/console/executions", f"/console/executions/{execution_id}", "/console/dead-letters"):
        page.goto(base + path)
        expect(page.locator("#token")).to_be_visible()
        assert proposal_id not in page.content()  # the execution id is only in the path asked for (next=)
        assert page.locator("table, svg, article").count() == 0
    for path in (f"/console/executions/{execution_id}/fragment", "/console/executions/fragment", "/console/stream"):
        response = requests.get(base + path, timeout=10, allow_redirects=False)
        assert response.status_code == 401 and proposal_id not in response.text
    # A bearer token is not a session: the console never reads the Authorization header.
    response = requests.get(f"{base}/console/executions/{execution_id}", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10, allow_redirects=False)
    assert response.status_code == 303 and response.headers["Location"].startswith("/console/login")


def test_console_cancel_post_without_the_csrf_token_is_refused_and_with_confirmation_cancels(console_stack: Stack,
                                                                                          page: Page) -> None:
    execution = settled(console_stack, created(console_stack, "sgd_multi_currency", "cancel")["execution_id"])
    execution_id = execution["execution_id"]
    sign_in(page, console_stack.gateway.url, TOKEN, f"/console/executions/{execution_id}")
    url = f"{console_stack.gateway.url}/console/executions/{execution_id}/cancel"
    # The session cookie alone (as a forged cross-site form would carry it, were SameSite absent): refused.
    refused = page.request.post(url, form={"confirm": "yes", "reason": "forged"})
    assert refused.status == 403 and "CSRF" in refused.text()
    forged_origin = page.request.post(url, form={"confirm": "yes"}, headers={"Origin": "http://evil.example"})
    assert forged_origin.status == 403
    assert console_stack.client.get(f"/rebalance/executions/{execution_id}").json()["status"] != "CANCELLED"

    page.click("text=Cancel execution…")
    expect(page.locator("h1")).to_contain_text(f"Cancel {execution_id}?")
    page.fill("#reason", "operator test")
    page.click("button.danger")
    expect(page.locator(".notice")).to_contain_text("Cancel accepted")
    # No OMS answers here: the released SELL waits in PENDING_CANCEL, the tickets never sent are cancelled.
    sell = next(t for t in execution["tickets"] if not t["dependencies"])
    expect(page.locator(f"g.node[data-node='{sell['ticket_id']}']")).to_have_attribute("data-status", "PENDING_CANCEL")
    expect(page.locator("#events")).to_contain_text("EXECUTION_CANCEL_REQUESTED")
    expect(page.locator("#events")).to_contain_text("operator test")


def test_console_sign_out_ends_the_session(console_stack: Stack, page: Page) -> None:
    sign_in(page, console_stack.gateway.url, TOKEN)
    cookie = page.context.cookies()[0]["value"]
    page.click("text=Sign out")
    expect(page.locator("#token")).to_be_visible()
    response = requests.get(f"{console_stack.gateway.url}/console/executions", cookies={"console-session": cookie},
                            timeout=10, allow_redirects=False)
    assert response.status_code == 303



