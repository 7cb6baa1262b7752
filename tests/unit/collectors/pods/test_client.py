"""API client configuration: errors say what to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.pods.client import KubeClient
from core.errors import ConfigError
from core.settings import PodCollectorSettings


async def test_missing_kubeconfig_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    cfg = PodCollectorSettings(kubeconfig=tmp_path / "absent", config_mode="kubeconfig")
    with pytest.raises(ConfigError, match="LOGWEAVE_PODS__KUBECONFIG"):
        await KubeClient.create(cfg)


async def test_in_cluster_without_a_service_account_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="in-cluster service account"):
        await KubeClient.create(PodCollectorSettings(config_mode="in-cluster"))


async def test_kubeconfig_context_is_used(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters:\n- name: a\n  cluster: {server: 'http://127.0.0.1:1'}\n"
        "- name: b\n  cluster: {server: 'http://127.0.0.1:2'}\n"
        "users:\n- name: u\n  user: {token: t}\n"
        "contexts:\n- name: a\n  context: {cluster: a, user: u}\n- name: b\n  context: {cluster: b, user: u}\n")
    client = await KubeClient.create(PodCollectorSettings(kubeconfig=path, context="b", max_streams=300))
    try:
        assert client.api.configuration.host == "http://127.0.0.1:2"
        assert client.api.configuration.connection_pool_maxsize >= 300
    finally:
        await client.close()
