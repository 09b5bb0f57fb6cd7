"""Choose the schema registry for tests and the demo: `SCHEMA_REGISTRY_URL` if set (an existing
registry always wins), else the local Apicurio Registry JVM built from Maven Central."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from local_registry.registry import LocalSchemaRegistry

REGISTRY_URL_ENV = "SCHEMA_REGISTRY_URL"


@dataclass(frozen=True, slots=True)
class RegistryEndpoint:
    url: str
    kind: str  # "external" or "local-jvm"
    description: str
    local_registry: LocalSchemaRegistry | None = None  # the process we started, if we started one


@contextmanager
def schema_registry() -> Iterator[RegistryEndpoint]:
    """Yield a registry to use, starting (and afterwards stopping) one if needed."""
    external = os.environ.get(REGISTRY_URL_ENV, "").strip()
    if external:
        yield RegistryEndpoint(external, "external", f"{REGISTRY_URL_ENV}={external}")
        return
    registry = LocalSchemaRegistry().start()
    try:
        yield RegistryEndpoint(registry.url, "local-jvm",
                               f"Apicurio Registry {registry.version} (local JVM, pid {registry.pid})", registry)
    finally:
        registry.stop()
