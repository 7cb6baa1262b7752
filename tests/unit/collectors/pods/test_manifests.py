"""deploy/k8s/pod-collector: RBAC grants exactly what the collector calls, and the pieces fit together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DIR = Path(__file__).resolve().parents[4] / "deploy" / "k8s" / "pod-collector"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DIR / name).read_text())
    return doc


def test_role_grants_only_read_access_to_pods_and_their_logs() -> None:
    rules = load("clusterrole.yaml")["rules"]
    granted = {(res, verb) for rule in rules for res in rule["resources"] for verb in rule["verbs"]}
    assert granted == {("pods", "get"), ("pods", "list"), ("pods", "watch"), ("pods/log", "get")}
    assert all(rule["apiGroups"] == [""] for rule in rules)


def test_bindings_deployment_and_service_account_agree() -> None:
    account = load("serviceaccount.yaml")["metadata"]
    role = load("clusterrole.yaml")["metadata"]["name"]
    deployment = load("deployment.yaml")
    for binding in (load("rolebinding.yaml"), load("cluster-wide/clusterrolebinding.yaml")):
        assert binding["roleRef"]["name"] == role
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                        "namespace": account["namespace"]}]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == account["name"]
    container = spec["containers"][0]
    assert container["command"] == ["logweave", "collect", "pods"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LOGWEAVE_PODS__CONFIG_MODE"] == "in-cluster"
    assert env["NAMESPACE"] == load("rolebinding.yaml")["metadata"]["namespace"]
    kustomization = load("kustomization.yaml")["resources"]
    assert sorted(kustomization) == sorted(["serviceaccount.yaml", "clusterrole.yaml", "rolebinding.yaml",
                                            "deployment.yaml", "networkpolicy.yaml"])
