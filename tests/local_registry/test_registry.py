"""The local schema registry: built from Maven Central, started on loopback, stopped by PID."""

from __future__ import annotations

import json
import urllib.request

import pytest

from local_kafka.broker import pid_alive
from local_registry.registry import LocalSchemaRegistry
from local_registry.select import RegistryEndpoint, schema_registry

pytestmark = pytest.mark.registry


def test_local_registry_select_external_url_wins_without_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry.example:8081")
    with schema_registry() as endpoint:
        assert (endpoint.kind, endpoint.url, endpoint.local_registry) == ("external", "http://registry.example:8081", None)


def test_local_registry_serves_the_confluent_api_on_loopback(registry_endpoint: RegistryEndpoint) -> None:
    if registry_endpoint.local_registry is None:
        pytest.skip("SCHEMA_REGISTRY_URL names an external registry")
    assert registry_endpoint.url.startswith("http://127.0.0.1:")
    assert registry_endpoint.url.endswith("/apis/ccompat/v7")
    with urllib.request.urlopen(f"{registry_endpoint.url}/subjects", timeout=10) as response:
        assert isinstance(json.loads(response.read()), list)


def test_local_registry_stop_ends_the_jvm_and_removes_its_directory() -> None:
    registry = LocalSchemaRegistry().start()
    pid, work_dir = registry.pid, registry.work_dir
    assert pid is not None and pid_alive(pid) and work_dir is not None and work_dir.exists()
    registry.stop()
    assert not pid_alive(pid)
    assert not work_dir.exists()
    registry.stop()  # idempotent
