"""deploy/k8s/file-collector: the DaemonSet reads pod logs read-only and keeps checkpoints on the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.settings import load_settings

DIR = Path(__file__).resolve().parents[4] / "deploy" / "k8s" / "file-collector"


def test_daemonset_mounts_and_settings() -> None:
    doc: dict[str, Any] = yaml.safe_load((DIR / "daemonset.yaml").read_text())
    assert doc["kind"] == "DaemonSet"
    spec = doc["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["command"] == ["logweave", "collect", "files"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v["hostPath"] for v in spec["volumes"]}
    assert mounts["pod-logs"]["readOnly"] is True and volumes["pod-logs"]["path"] == "/var/log/pods"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert mounts["checkpoints"]["mountPath"] == env["LOGWEAVE_COLLECTOR__CHECKPOINT_DIR"]
    assert volumes["checkpoints"]["type"] == "DirectoryOrCreate"
    # control-plane nodes too, but never a bare `operator: Exists` (tests/unit/deploy/test_k8s.py checks the rest)
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"} \
        in spec["tolerations"]
    assert container["resources"]["limits"]["memory"]
    values = {k: v for k, v in env.items() if v is not None}
    settings = load_settings(environ=values)  # every variable is a valid setting
    assert settings.collector.paths == ["/var/log/pods/*/*/*.log"] and settings.collector.metrics_port == 9101
    assert (DIR / "kustomization.yaml").exists()
