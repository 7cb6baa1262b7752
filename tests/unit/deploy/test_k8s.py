"""deploy/k8s: every manifest is valid against the Kubernetes OpenAPI schemas (offline, with
kubernetes-validate from PyPI), every kustomization's resources exist, and the manifests agree with
Logweave's settings, ports, probes and the image's user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.settings import Settings
from tests.unit.deploy.container_env import SECRET_PLACEHOLDER, settings_from_env

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kind(name: str, called: str | None = None) -> dict[str, Any]:
    found = [d for p in MANIFESTS for d in documents(p)
             if d["kind"] == name and called in (None, d["metadata"]["name"])]
    assert found, f"no {name} {called or ''} in deploy/k8s"
    return found[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", SECRET_PLACEHOLDER) for e in container.get("env", [])}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    for document in documents(path):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_caught() -> None:
    """The check above can fail: a misspelt field and a wrong type are both rejected."""
    statefulset = kind("StatefulSet")
    broken = yaml.safe_load(yaml.safe_dump(statefulset))
    broken["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    broken = yaml.safe_load(yaml.safe_dump(statefulset))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def resources_of(kustomization: Path) -> set[Path]:
    found: set[Path] = set()
    for entry in yaml.safe_load(kustomization.read_text()).get("resources", []):
        target = (kustomization.parent / entry).resolve()
        assert target.exists(), f"{kustomization.relative_to(ROOT)} lists {entry}, which does not exist"
        found |= resources_of(target / "kustomization.yaml") if target.is_dir() else {target}
    return found


def test_kustomizations_reach_every_manifest_but_the_secret_example() -> None:
    reached = resources_of(K8S / "kustomization.yaml") | resources_of(K8S / "pod-collector" / "kustomization.yaml")
    reached |= {(K8S / "pod-collector" / "cluster-wide" / "clusterrolebinding.yaml").resolve()}
    unreached = {p.resolve() for p in MANIFESTS} - reached
    assert {p.name for p in unreached} == {"secret.example.yaml"}


def worker_container() -> dict[str, Any]:
    return kind("StatefulSet")["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def worker_settings(tmp_path: Path) -> Settings:
    config = tmp_path / "logweave.yaml"
    config.write_text(kind("ConfigMap")["data"]["logweave.yaml"])
    env = container_env(worker_container())
    assert env.pop("LOGWEAVE_CONFIG") == "/etc/logweave/logweave.yaml"
    return settings_from_env(env, config)


def test_worker_config_map_and_env_load_in_the_settings_model(tmp_path: Path) -> None:
    settings = worker_settings(tmp_path)
    statefulset, container = kind("StatefulSet"), worker_container()
    assert settings.kafka.group_instance_id == SECRET_PLACEHOLDER  # the pod name, via fieldRef
    assert settings.kafka.static_membership
    assert statefulset["spec"]["replicas"] <= settings.kafka.partitions
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == str(settings.worker.data_dir)
    claim = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert claim == "data"
    assert mounts["config"] == "/etc/logweave"
    secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"LOGWEAVE_SINKS__ELASTICSEARCH__PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= secrets
    assert settings.sinks.elasticsearch.password is not None


def test_worker_ports_probes_and_service_match_the_web_server(tmp_path: Path) -> None:
    settings, container = worker_settings(tmp_path), worker_container()
    web_routes = (ROOT / "app" / "web.py").read_text()
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["web"]
    assert port == settings.worker.web_port and f"--web-port {port}" in " ".join(container["command"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert f'"{path}"' in web_routes, f"{probe} asks for {path}, which app/web.py does not serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = kind("Service", "logweave-worker")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == kind("StatefulSet")["spec"]["selector"]["matchLabels"]
    assert kind("StatefulSet")["spec"]["serviceName"] == service["metadata"]["name"]


def test_file_collector_daemonset_reads_host_logs_read_only_and_checkpoints_on_the_host() -> None:
    daemonset = kind("DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = settings_from_env(container_env(container))
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert volumes["pod-logs"]["hostPath"]["path"] == "/var/log/pods" and mounts["pod-logs"]["readOnly"]
    assert "hostPath" in volumes["checkpoints"]
    assert mounts["checkpoints"]["mountPath"] == str(settings.collector.checkpoint_dir)
    assert all(path.startswith("/var/log/pods/") for path in settings.collector.paths)
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["tolerations"]


def test_pod_collector_env_loads_and_rbac_allows_what_it_calls() -> None:
    deployment = kind("Deployment")
    settings_from_env(container_env(deployment["spec"]["template"]["spec"]["containers"][0]))
    rules = kind("ClusterRole")["rules"]
    granted = {(resource, verb) for rule in rules for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("pods", "list"), ("pods", "watch"), ("pods/log", "get")} <= granted


def test_pods_run_as_the_image_user_without_privileges() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = next(line.split()[1].split(":")[0] for line in dockerfile.splitlines() if line.startswith("USER "))
    for name, called in (("StatefulSet", None), ("Deployment", "logweave-pod-collector"),
                         ("Deployment", "logweave-api")):
        pod = kind(name, called)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and str(pod["securityContext"]["runAsUser"]) == user
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_query_api_loads_the_shared_config_needs_tokens_and_probes_what_it_serves(tmp_path: Path) -> None:
    config = tmp_path / "logweave.yaml"
    config.write_text(kind("ConfigMap")["data"]["logweave.yaml"])
    deployment = kind("Deployment", "logweave-api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = container_env(container)
    assert env.pop("LOGWEAVE_CONFIG") == "/etc/logweave/logweave.yaml"
    env["LOGWEAVE_API__TOKEN_HASHES"] = "0" * 64  # the Secret's value, as the example holds it
    settings = settings_from_env(env, config)
    assert settings.api.backend == "postgres" and "postgres" in settings.sinks.enabled
    hashes = next(e for e in container["env"] if e["name"] == "LOGWEAVE_API__TOKEN_HASHES")
    assert not hashes["valueFrom"]["secretKeyRef"].get("optional", False)  # no token, no API
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert f"--port {port}" in " ".join(container["command"]) and "--host 0.0.0.0" in " ".join(container["command"])
    routes = (ROOT / "query" / "server.py").read_text()
    for probe in ("livenessProbe", "readinessProbe"):
        assert f'"{container[probe]["httpGet"]["path"]}"' in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = kind("Service", "logweave-api")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
