"""docker-compose.yml: valid against the Compose specification's JSON schema (the copy vendored in
check-jsonschema, offline), every Logweave service's environment loads in the settings model, and
addresses, ports, volumes and health checks agree with the services they point at."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from tests.unit.deploy.container_env import settings_from_env

ROOT = Path(__file__).resolve().parents[3]
LOGWEAVE_SERVICES = ("worker", "file-collector", "intake", "api")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def schema() -> dict[str, Any]:
    """Only check-jsonschema's data file is used (found, not imported: its CLI wants a newer click
    than faust allows)."""
    spec = find_spec("check_jsonschema")
    assert spec is not None and spec.submodule_search_locations, "pip install -e '.[test]' installs check-jsonschema"
    package = Path(next(iter(spec.submodule_search_locations)))
    return json.loads((package / "builtin_schemas" / "vendor" / "compose-spec.json").read_text())  # type: ignore[no-any-return]


def validate(document: dict[str, Any]) -> None:
    jsonschema.validators.validator_for(schema())(schema()).validate(document)


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    validate(compose())


def test_a_broken_compose_file_is_caught() -> None:
    """The check above can fail: an unknown service key and an unknown depends_on condition are rejected."""
    broken = compose()
    broken["services"]["worker"]["restart_policy"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    broken = compose()
    broken["services"]["worker"]["depends_on"]["kafka"]["condition"] = "when_ready"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


@pytest.mark.parametrize("name", LOGWEAVE_SERVICES)
def test_logweave_services_environment_loads_and_points_at_compose_services(name: str) -> None:
    services = compose()["services"]
    service = services[name]
    settings = settings_from_env({k: str(v) for k, v in service["environment"].items()})
    for broker in settings.kafka.bootstrap_servers:
        assert broker.split(":")[0] in services, f"kafka.brokers names {broker}, not a compose service"
    sinks = settings.sinks
    addresses = {"etcd": sinks.etcd.servers, "elasticsearch": sinks.elasticsearch.url, "s3": sinks.s3.endpoint_url,
                 "postgres": sinks.postgres.dsn.get_secret_value()}
    for sink in sinks.enabled:
        if sink in addresses:
            host = urlparse(addresses[sink]).hostname
            assert (host in services and host in service["depends_on"]) or name != "worker", (sink, host)
    assert service["image"] == compose()["services"]["worker"]["image"]  # one image, built once
    assert "healthcheck" in service


def test_worker_port_volume_and_health_check_match_its_settings() -> None:
    worker = compose()["services"]["worker"]
    settings = settings_from_env({k: str(v) for k, v in worker["environment"].items()})
    dockerfile = (ROOT / "Dockerfile").read_text()
    data_dir = next(line.split("=", 1)[1].split()[0] for line in dockerfile.splitlines()
                    if "LOGWEAVE_WORKER__DATA_DIR=" in line)
    assert any(volume.endswith(f":{data_dir}") for volume in worker["volumes"])
    port = settings.worker.web_port
    assert f"127.0.0.1:{port}:{port}" in worker["ports"] and f"--web-port {port}" in " ".join(worker["command"])
    assert f"localhost:{port}/readyz" in " ".join(worker["healthcheck"]["test"])
    assert settings.kafka.group_instance_id and settings.kafka.static_membership


def test_every_dependency_has_a_health_check() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s health check"
