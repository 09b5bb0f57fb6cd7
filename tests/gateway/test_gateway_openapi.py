"""The OpenAPI 3.1 document: generated from the pydantic models, valid, and describing exactly
the routes the app serves; the bodies the gateway builds conform to it."""

from __future__ import annotations

import orjson
import schemathesis
from aiohttp.test_utils import TestClient

from gateway import models
from gateway.app import create_app
from gateway.console.app import CONSOLE_ROUTE_PREFIX
from gateway.openapi import openapi_document
from gateway.problems import Problems
from gateway.views import execution_view, header_view, summary_view
from testkit.gateway_fakes import AUTH, FakeBackend, config, run, state_change


def test_document_is_a_valid_openapi_3_1_document() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13


def test_every_served_route_is_documented_and_every_documented_route_is_served() -> None:
    app = create_app(config(), backend=FakeBackend())
    api_routes = [route for route in app.router.routes()  # the operator console is pages, not the API
                  if not (route.name or "").startswith(CONSOLE_ROUTE_PREFIX)]
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api_routes if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, item in openapi_document()["paths"].items() for method in item}
    assert served == documented
    names = {route.name for route in api_routes if route.name}
    operation_ids = {op["operationId"] for item in openapi_document()["paths"].values() for op in item.values()}
    assert names == operation_ids


def test_components_come_from_the_pydantic_models() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for model in (models.CreateExecutionRequest, models.OrderEventRequest, models.CancelExecutionRequest,
                  models.Execution, models.ExecutionPage, models.Problem):
        assert model.__name__ in schemas
    execution = schemas["Execution"]
    assert execution["additionalProperties"] is False
    assert {"execution_id", "proposal_id", "version_no", "status", "tickets", "lineage"} <= set(execution["required"])
    policy = schemas["ExecutionPolicyRequest"]
    assert policy["properties"]["max_slippage_bps"]["type"] == "string"  # decimals are strings
    assert policy["required"] == ["max_slippage_bps"]


def test_every_problem_status_the_handlers_use_is_documented_somewhere() -> None:
    documented = {
        int(code) for item in openapi_document()["paths"].values() for op in item.values()
        for code in op["responses"] if code.isdigit()
    }
    assert {kind.status for kind in Problems.all()} - {405, 500} <= documented  # 405/500: the `default` response


def test_served_document_is_the_generated_one() -> None:
    async def scenario(client: TestClient) -> dict:
        return await (await client.get("/openapi.json", headers=AUTH)).json()

    assert run(create_app(config(), backend=FakeBackend()), scenario) == orjson.loads(orjson.dumps(openapi_document()))


def test_views_built_from_snapshots_validate_against_the_response_models() -> None:
    for status in ("CREATED", "PARTIALLY_FILLED", "FILLED"):
        snapshot = state_change("exec_v", status=status)["execution"]
        models.Execution.model_validate(execution_view(snapshot))
        models.ExecutionSummary.model_validate(summary_view(header_view(snapshot)))
