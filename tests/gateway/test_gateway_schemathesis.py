"""Schemathesis against the running gateway (real broker and processor behind it): for every
operation of GET /openapi.json, generated requests (valid and invalid) never get a 5xx, and
every response conforms to the document (status code, content type, headers, body schema).

Bounded and deterministic: a fixed number of examples per operation, derandomized. Webhook
calls generated in positive mode are signed with a configured secret, so fuzzing reaches
the event validation behind the signature check.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import openapi_document
from gateway.webhook import SIGNATURE_HEADER, signature_header
from testkit.gateway import INLINE_TOKEN, WEBHOOK_SECRET, Stack

pytestmark = pytest.mark.integration

# A token that may send inline artifacts (so creates take bodies up to 1 MiB, and a fuzzed artifact
# reaches its validation instead of a 413 or 403).
AUTH = {"Authorization": f"Bearer {INLINE_TOKEN}"}
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
WEBHOOK_PATH = "/rebalance/executions/{execution_id}/events"


# The document the gateway serves (test_served_document_is_the_generated_one and the first test
# below check that it is this one). Loaded here rather than from a fixture: schemathesis' lazy
# fixture loader does not work with pytest 9 (it sets the removed Node._nodeid).
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_served_document_is_the_one_under_test(stack: Stack) -> None:
    served = stack.client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(openapi_document()))


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_gateway_conforms_to_its_openapi_document(case: schemathesis.Case, stack: Stack) -> None:
    headers = dict(AUTH)
    kwargs = {}
    positive = case.meta is None or not case.meta.generation.mode.is_negative
    if (case.operation.path, case.method.upper()) == (WEBHOOK_PATH, "POST") and positive and case.body is not None:
        raw = json.dumps(case.body).encode()
        headers[SIGNATURE_HEADER] = signature_header(WEBHOOK_SECRET, raw)
        kwargs["data"] = raw
    response = case.call(base_url=stack.gateway.url, headers=headers, **kwargs)
    case.validate_response(response, checks=CHECKS, headers=headers)
