"""Concurrent creates through the real gateway and processor: one execution per key, whatever
the interleaving."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from execution_domain import execution_id_for_key
from testkit.gateway import TOKEN, Stack, create_body, new_key, unique_proposal

pytestmark = pytest.mark.integration


async def _post_all(url: str, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        async def post(key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with session.post(f"{url}/rebalance/executions", json=body,
                                    headers={"Idempotency-Key": key}) as response:
                return response.status, json.loads(await response.read())

        return await asyncio.gather(*(post(key, body) for key, body in requests))


def post_concurrently(stack: Stack, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    return asyncio.run(_post_all(stack.gateway.url, requests))


def test_fifty_concurrent_identical_creates_make_one_execution_and_fifty_answers_naming_it(stack: Stack) -> None:
    proposal = unique_proposal("sgd_multi_currency", "burst")
    stack.publish(proposal)
    key = new_key("burst")

    answers = post_concurrently(stack, [(key, create_body(proposal))] * 50)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 49 + [201], statuses
    execution_id = execution_id_for_key(key)
    assert {body["execution_id"] for _, body in answers} == {execution_id}
    assert len({json.dumps(body["tickets"], sort_keys=True) for _, body in answers}) == 1
    # One execution exists: one creation in its log, its tickets released once.
    page = stack.client.get("/rebalance/executions", params={"proposal_id": proposal["proposal_id"]}).json()
    assert [item["execution_id"] for item in page["items"]] == [execution_id]
    stack.harness.outputs.drain(0.3)
    changes = stack.harness.state_changes(execution_id)
    assert sum(1 for c in changes if c["execution_transition"] and c["execution_transition"]["from_state"] is None) == 1
    released = [i["ticket"]["ticket_id"] for i in stack.harness.instructions(execution_id)]
    assert released and len(released) == len(set(released))


def test_one_key_with_two_different_bodies_concurrently_gives_one_201_and_one_409(stack: Stack) -> None:
    proposal = unique_proposal("rfc_accept_all", "race")
    stack.publish(proposal)
    key = new_key("race")
    bodies = [create_body(proposal), create_body(proposal, policy={"max_slippage_bps": "40"})]

    answers = post_concurrently(stack, [(key, body) for body in bodies])

    assert sorted(status for status, _ in answers) == [201, 409], answers
    created = next(body for status, body in answers if status == 201)
    conflict = next(body for status, body in answers if status == 409)
    assert created["execution_id"] == execution_id_for_key(key)
    assert conflict["type"].endswith("/idempotency-key-conflict")
    assert conflict["existing_execution_id"] == created["execution_id"]
