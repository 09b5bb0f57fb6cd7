"""The reference documents the gateway serves: /asyncapi.json (bearer, like /openapi.json) and the
problem-type pages every problem's `type` URI names (no token needed to look one up)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.problems import Problems
from testkit.gateway_fakes import AUTH, FakeBackend, assert_problem, config, run
from wire.topics import TOPICS


def serve(scenario: Any) -> Any:
    return run(create_app(config(), backend=FakeBackend()), scenario)


def test_gateway_asyncapi_json_lists_every_topic_and_needs_a_token() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[int, dict[str, Any], int]:
        response = await client.get("/asyncapi.json", headers=AUTH)
        anonymous = await client.get("/asyncapi.json")
        return response.status, await response.json(), anonymous.status

    status, document, anonymous_status = serve(scenario)
    assert (status, anonymous_status) == (200, 401)
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == {topic.kind for topic in TOPICS}


def test_gateway_problem_pages_describe_every_problem_type_without_a_token() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], int, dict[str, Any]]:
        listing = await (await client.get("/problems")).json()
        pages = [await (await client.get(f"/problems/{kind.slug}")).json() for kind in Problems.all()]
        unknown = await client.get("/problems/no-such-problem")
        return listing, pages, unknown.status, await unknown.json(content_type=None)

    listing, pages, unknown_status, unknown = serve(scenario)
    assert [item["type"] for item in listing["items"]] == [kind.uri for kind in Problems.all()]
    for kind, page in zip(Problems.all(), pages, strict=True):
        assert (page["type"], page["status"], page["title"]) == (kind.uri, kind.status, kind.title)
        assert page["when"] and page["when"] != "See docs/gateway.md.", kind.slug
    assert unknown_status == 404
    assert_problem(404, unknown, "not-found")
