"""docker-compose.yml cannot run on machines without a Docker engine, so it is checked here:
it parses, its broker is configured like the local one, and what it names exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from local_kafka.assemble import kafka_version
from local_kafka.broker import server_properties
from local_kafka.select import DEFAULT_IMAGE, apache_kafka_container_env

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("execution_domain", "wire", "kafka_client", "observability", "local_kafka", "processor", "gateway",
            "mock_oms", "status_consumer", "demo")
# Broker settings a single node needs; compose, testcontainers and the JVM broker must agree.
SINGLE_NODE_KEYS = [
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
    "group.initial.rebalance.delay.ms",
    "auto.create.topics.enable",
]


def image_env_name(property_name: str) -> str:
    """The apache/kafka image's mapping: '.' -> '_', '_' -> '__', '-' -> '___', upper case."""
    return "KAFKA_" + property_name.replace("-", "___").replace("_", "__").replace(".", "_").upper()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def project_services(compose: dict) -> dict[str, dict]:
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def test_compose_broker_is_the_pinned_apache_kafka_image(compose: dict) -> None:
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{kafka_version()}" == DEFAULT_IMAGE


@pytest.mark.parametrize("property_name", SINGLE_NODE_KEYS)
def test_compose_and_testcontainers_broker_settings_match_the_local_broker(compose: dict, property_name: str) -> None:
    expected = server_properties(data_dir=Path("/x"), broker_port=1, controller_port=2)[property_name]
    env_name = image_env_name(property_name)
    assert str(compose["services"]["kafka"]["environment"][env_name]) == expected
    assert apache_kafka_container_env(9092)[env_name] == expected


def test_compose_publishes_ports_on_loopback_only(compose: dict) -> None:
    for name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_runs_the_processor_gateway_and_mock_oms(compose: dict) -> None:
    commands = {spec["command"][2] for spec in project_services(compose).values()}
    assert {"processor", "gateway", "mock_oms"} <= commands


def test_dockerfile_copies_every_package_of_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in PACKAGES:
        assert f"COPY {package} ./{package}" in dockerfile, package


def test_compose_project_services_build_from_a_dockerfile_whose_sources_exist(compose: dict) -> None:
    assert project_services(compose), "compose names none of the project's services"
    dockerfile = ROOT / "Dockerfile"
    assert dockerfile.exists()
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile.read_text(), flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def test_compose_service_commands_are_modules_of_this_project(compose: dict) -> None:
    for name, spec in project_services(compose).items():
        command = spec["command"]
        assert command[:2] == ["python", "-m"], f"{name}: {command}"
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: no module {command[2]}"


def test_compose_service_environment_variables_are_read_by_the_code(compose: dict) -> None:
    from gateway import config as gateway_config
    from processor import config as processor_config

    sources = "\n".join(
        path.read_text() for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    )
    # Variables the settings models derive from their field names (pydantic-settings).
    sources += "\n".join(processor_config.env_name(name) for name in processor_config.ProcessorSettings.model_fields)
    sources += "\n".join(gateway_config.env_name(name) for name in gateway_config.GatewaySettings.model_fields)
    for name, spec in project_services(compose).items():
        for variable in spec.get("environment", {}):
            assert variable in sources, f"{name} sets {variable}, which no code reads"
