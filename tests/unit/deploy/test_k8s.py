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

DIGEST_PLACEHOLDER = "0" * 64

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kind(name: str, called: str | None = None) -> dict[str, Any]:
    """The first manifest of kind `name` (named `called`, when given)."""
    found = [d for p in MANIFESTS for d in documents(p)
             if d["kind"] == name and called in (None, d["metadata"]["name"])]
    assert found, f"no {name} {called or ''} in deploy/k8s"
    return found[0]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Values as a pod gets them: Secrets and the downward API are filled in at run time, so they stand in
    as placeholders (a token digest as a well-formed sha256 digest); an optional secret key may be empty
    (the example secret leaves the Elasticsearch api key empty: a username and password are used instead)."""
    def value(entry: dict[str, Any]) -> str:
        ref = entry.get("valueFrom", {}).get("secretKeyRef", {})
        if ref.get("optional"):
            return ""
        if "value" not in entry and entry["name"] == "LOGWEAVE_AUTH__TOKEN_HASHES":
            return DIGEST_PLACEHOLDER
        return str(entry.get("value", SECRET_PLACEHOLDER))
    return {e["name"]: value(e) for e in container.get("env", [])}


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
    config.write_text(kind("ConfigMap", "logweave-config")["data"]["logweave.yaml"])
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
    deployment = kind("Deployment", "logweave-pod-collector")
    settings_from_env(container_env(deployment["spec"]["template"]["spec"]["containers"][0]))
    rules = kind("ClusterRole")["rules"]
    granted = {(resource, verb) for rule in rules for resource in rule["resources"] for verb in rule["verbs"]}
    assert {("pods", "list"), ("pods", "watch"), ("pods/log", "get")} <= granted


def test_pods_run_as_the_image_user_without_privileges() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = next(line.split()[1].split(":")[0] for line in dockerfile.splitlines() if line.startswith("USER "))
    for name, called in (("StatefulSet", None), ("Deployment", "logweave-pod-collector"),
                         ("Deployment", "logweave-intake"), ("Deployment", "logweave-api")):
        pod = kind(name, called)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and str(pod["securityContext"]["runAsUser"]) == user
        assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_intake_config_ports_probes_service_and_autoscaler_agree(tmp_path: Path) -> None:
    deployment = kind("Deployment", "logweave-intake")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config = tmp_path / "logweave.yaml"
    config.write_text(kind("ConfigMap", "logweave-intake")["data"]["logweave.yaml"])
    env = container_env(container)
    assert env.pop("LOGWEAVE_CONFIG") == "/etc/logweave/logweave.yaml"
    settings = settings_from_env(env, config).intake
    assert settings.host == "0.0.0.0" and settings.tenants, "a pod listens on every address, so tokens are required"
    ports = {(p["name"], p.get("protocol", "TCP")): p["containerPort"] for p in container["ports"]}
    assert ports == {("http", "TCP"): settings.http_port, ("otlp-grpc", "TCP"): settings.otlp_grpc_port,
                     ("otlp-http", "TCP"): settings.otlp_http_port, ("forward", "TCP"): settings.forward_port,
                     ("syslog", "TCP"): settings.syslog_port, ("syslog-udp", "UDP"): settings.syslog_port}
    routes = (ROOT / "collectors" / "intake" / "http_api.py").read_text()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert f'"{path}"' in routes, f"{probe} asks for {path}, which the intake does not serve"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = kind("Service", "logweave-intake")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {(p["targetPort"], p.get("protocol", "TCP")) for p in service["spec"]["ports"]} == set(ports)
    autoscaler = kind("HorizontalPodAutoscaler", "logweave-intake")
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": "logweave-intake"}
    assert container["resources"]["requests"]["cpu"], "a CPU autoscaler needs a CPU request"


# -- hardening: network policies, the collector's token and tolerations, required Secrets ---------

WEB_ACCESS = {"logweave.io/web-access": "true"}
DNS_PORT = 53


def all_of(name: str) -> list[dict[str, Any]]:
    return [d for p in MANIFESTS for d in documents(p) if d["kind"] == name]


def policies_for(workload: dict[str, Any], policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The NetworkPolicies that select this workload's pods (a selector matching nothing is a bug)."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    namespace = workload["metadata"]["namespace"]
    return [p for p in policies if p["metadata"]["namespace"] == namespace
            and (match := p["spec"]["podSelector"].get("matchLabels"))
            and all(labels.get(k) == v for k, v in match.items())]


def host_port(address: str, default: int) -> tuple[str, int]:
    address = address.split("://")[-1].split("/")[0]
    host, _, port = address.rpartition(":")
    return (host, int(port)) if host else (address, default)


def check_network_policy(workload: dict[str, Any], policies: list[dict[str, Any]], egress_ports: set[int],
                         push_endpoint: bool = False) -> None:
    """Only labelled namespaces reach the pod's declared ports (any namespace, for a push endpoint whose
    protocols authenticate the sender); egress only to DNS and `egress_ports`."""
    namespace = workload["metadata"]["namespace"]
    assert any(p["metadata"]["namespace"] == namespace and p["spec"]["podSelector"] == {}
               and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
               and not p["spec"].get("egress") for p in policies) or namespace != "logweave", "no default deny"
    mine = policies_for(workload, policies)
    assert mine, f"no NetworkPolicy selects {workload['metadata']['name']}"
    declared = {p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
    for policy in mine:
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from") and rule.get("ports"), "an ingress rule open to every source or port"
            allowed_peers = [{"namespaceSelector": {"matchLabels": WEB_ACCESS}}]
            if push_endpoint:
                allowed_peers.append({"namespaceSelector": {}})
            assert all(peer in allowed_peers for peer in rule["from"])
            assert {p["port"] for p in rule["ports"]} <= declared
        allowed: set[int] = set()
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), "an egress rule open to every destination or port"
            allowed |= {p["port"] for p in rule["ports"]}
        assert allowed == egress_ports | {DNS_PORT}, f"egress {sorted(allowed)}"


def worker_egress(settings: Settings) -> set[int]:
    ports = {host_port(b, 9092)[1] for b in settings.kafka.bootstrap_servers}
    if "elasticsearch" in settings.sinks.enabled:
        ports.add(host_port(settings.sinks.elasticsearch.url, 9200)[1])
    if "etcd" in settings.sinks.enabled:
        ports |= {host_port(e, 2379)[1] for e in settings.sinks.etcd.endpoints}
    if "s3" in settings.sinks.enabled:
        ports.add(host_port(settings.sinks.s3.endpoint_url or "https://s3.amazonaws.com", 443)[1])
    return ports


def test_network_policies_close_the_namespace_to_all_but_what_each_process_needs(tmp_path: Path) -> None:
    policies, settings = all_of("NetworkPolicy"), worker_settings(tmp_path)
    check_network_policy(kind("StatefulSet"), policies, worker_egress(settings))
    search = host_port(settings.sinks.elasticsearch.url, 9200)
    rule = next(r for p in policies_for(kind("StatefulSet"), policies) for r in p["spec"]["egress"]
                if {x["port"] for x in r["ports"]} == {search[1]})
    assert rule["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == search[0].split(".")[1]
    for name, named in (("DaemonSet", None), ("Deployment", "logweave-pod-collector"),
                        ("Deployment", "logweave-intake")):
        workload = kind(name, named) if named else kind(name)
        env = container_env(workload["spec"]["template"]["spec"]["containers"][0])
        env.pop("LOGWEAVE_CONFIG", None)  # the mounted file's Kafka settings are the environment's here
        kafka = {host_port(b, 9092)[1] for b in settings_from_env(env).kafka.bootstrap_servers}
        api = {443, 6443} if named == "logweave-pod-collector" else set()
        check_network_policy(workload, policies, kafka | api, push_endpoint=named == "logweave-intake")


def test_the_network_policy_check_catches_open_rules(tmp_path: Path) -> None:
    policies, settings = all_of("NetworkPolicy"), worker_settings(tmp_path)
    worker = kind("StatefulSet")
    for breakage in ("open egress", "open ingress", "extra port", "no default deny", "selects nothing"):
        broken = yaml.safe_load(yaml.safe_dump(policies))
        mine = policies_for(worker, broken)[0]
        if breakage == "open egress":
            mine["spec"]["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
        elif breakage == "open ingress":
            mine["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
        elif breakage == "extra port":
            mine["spec"]["egress"][1]["ports"].append({"protocol": "TCP", "port": 22})
        elif breakage == "no default deny":
            broken = [p for p in broken if p["spec"]["podSelector"]]
        else:
            mine["spec"]["podSelector"]["matchLabels"] = {"app.kubernetes.io/name": "logweave-wroker"}
        with pytest.raises(AssertionError):
            check_network_policy(worker, broken, worker_egress(settings))


def check_log_agent_pod(pod: dict[str, Any], documented: str) -> None:
    assert pod.get("automountServiceAccountToken") is False, "the file collector needs no API token"
    for toleration in pod.get("tolerations", []):
        assert toleration.get("key"), f"{toleration} tolerates every taint"
        assert f"`{toleration['key']}`" in documented, f"{toleration['key']} is not explained in the README"


def test_the_file_collector_has_no_api_token_and_only_the_tolerations_a_log_agent_needs() -> None:
    pod, readme = kind("DaemonSet")["spec"]["template"]["spec"], (K8S / "README.md").read_text()
    check_log_agent_pod(pod, readme)
    assert kind("StatefulSet")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    for breakage in ({"automountServiceAccountToken": True}, {"tolerations": [{"operator": "Exists"}]},
                     {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}):
        with pytest.raises(AssertionError):
            check_log_agent_pod({**pod, **breakage}, readme)


def sink_of(variable: str) -> str | None:
    """The sink a credential variable belongs to (None for other credentials: Kafka, web tokens)."""
    if variable.startswith("AWS_"):
        return "s3"
    if variable.startswith("LOGWEAVE_SINKS__"):
        return variable.removeprefix("LOGWEAVE_SINKS__").split("__")[0].lower()
    return None


def check_required_secrets(container: dict[str, Any], settings: Settings) -> None:
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]
            if "secretKeyRef" in e.get("valueFrom", {}) and sink_of(e["name"])}
    for variable, ref in refs.items():
        assert sink_of(variable) in settings.sinks.enabled, f"{variable}: its sink is not enabled"
        assert not ref.get("optional", False), f"{variable} is optional, yet its sink is enabled"
    needs = {"elasticsearch": "LOGWEAVE_SINKS__ELASTICSEARCH__PASSWORD", "etcd": "LOGWEAVE_SINKS__ETCD__PASSWORD"}
    for sink, variable in needs.items():
        group = getattr(settings.sinks, sink)
        if sink in settings.sinks.enabled and group.username:
            assert variable in refs, f"the {sink} sink has a username but {variable} comes from no Secret"


def test_the_secrets_of_enabled_sinks_are_required(tmp_path: Path) -> None:
    container, settings = worker_container(), worker_settings(tmp_path)
    check_required_secrets(container, settings)
    broken = yaml.safe_load(yaml.safe_dump(container))
    broken["env"][-1]["valueFrom"]["secretKeyRef"]["optional"] = True
    with pytest.raises(AssertionError, match="optional"):
        check_required_secrets(broken, settings)
    broken = yaml.safe_load(yaml.safe_dump(container))
    broken["env"] = [e for e in broken["env"] if e["name"] != "LOGWEAVE_SINKS__ELASTICSEARCH__PASSWORD"]
    with pytest.raises(AssertionError, match="comes from no Secret"):
        check_required_secrets(broken, settings)


def test_query_api_loads_the_shared_config_needs_tokens_and_probes_what_it_serves(tmp_path: Path) -> None:
    config = tmp_path / "logweave.yaml"
    config.write_text(kind("ConfigMap", "logweave-config")["data"]["logweave.yaml"])
    deployment = kind("Deployment", "logweave-api")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = container_env(container)
    assert env.pop("LOGWEAVE_CONFIG") == "/etc/logweave/logweave.yaml"
    assert env["LOGWEAVE_AUTH__TOKEN_HASHES"] == DIGEST_PLACEHOLDER  # the Secret's value
    settings = settings_from_env(env, config)
    assert settings.api.backend == "postgres" and "postgres" in settings.sinks.enabled
    hashes = next(e for e in container["env"] if e["name"] == "LOGWEAVE_AUTH__TOKEN_HASHES")
    assert not hashes["valueFrom"]["secretKeyRef"].get("optional", False)  # no token, no API
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert f"--port {port}" in " ".join(container["command"]) and "--host 0.0.0.0" in " ".join(container["command"])
    routes = (ROOT / "query" / "server.py").read_text()
    for probe in ("livenessProbe", "readinessProbe"):
        assert f'"{container[probe]["httpGet"]["path"]}"' in routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = kind("Service", "logweave-api")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
