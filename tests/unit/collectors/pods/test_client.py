"""API client configuration: errors say what to set."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from collectors.pods import polled_log
from collectors.pods.client import KubeClient
from collectors.pods.polled_log import PolledLog
from core.errors import ConfigError
from core.settings import PodCollectorSettings
from tests.support.kube_api import FakeKubeApi


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
        assert client.config.server == "http://127.0.0.1:2"
        assert client.session.connector is not None and client.session.connector.limit >= 300
    finally:
        await client.close()


async def test_log_responses_take_at_most_read_bufsize_per_socket_read(tmp_path: Path) -> None:
    """asyncio reads 256 KiB per recv by default: with hundreds of logs starting at once that, not the
    lines, was most of the collector's memory."""
    body = b"".join(b"2025-06-10T08:25:41.000000000Z line %d\n" % n for n in range(50_000))

    async def log(request: web.Request) -> web.Response:
        assert request.query["follow"] == "true" and request.query["container"] == "c"
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/ns/pods/p/log", log)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        f"clusters:\n- name: a\n  cluster: {{server: 'http://127.0.0.1:{port}'}}\n"
        "users:\n- name: u\n  user: {token: t}\ncontexts:\n- name: a\n  context: {cluster: a, user: u}\n")
    client = await KubeClient.create(PodCollectorSettings(kubeconfig=path, read_bufsize=8192))
    try:
        resp = await client.open_log("ns", "p", "c", None, previous=False)
        assert resp.connection is not None and resp.connection.transport is not None
        assert resp.connection.transport.max_size == 8192  # type: ignore[attr-defined]
        # paused past half a socket read: a stream holds ~1.5 reads at most, and is woken once per read
        assert resp.content.get_read_buffer_limits() == (2048, 4096)
        assert await resp.read() == body
        resp.release()
    finally:
        await client.close()
        await runner.cleanup()



async def test_at_most_max_opening_follows_handshake_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's streams all open together at a start. 1,000 TLS handshakes at once left the collector at
    260 MiB (their buffers, freed, stay in the heap): `pods.max_opening` bounds the polled follows setting up
    their connection, and every follow still opens and reads. Real TLS against the API test server; the
    handshake is only wrapped, to count how many run at once and to make each last 0.1 s."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = await FakeKubeApi().start(ssl_context=context)
    pods = [server.add_pod(f"p{n}") for n in range(7)]
    for pod in pods:
        server.log(pod, "app", [f"first of {pod.name}"])
    running, most = 0, 0
    handshake = polled_log._handshake

    async def counted(*args: Any) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.1)
            await handshake(*args)
        finally:
            running -= 1

    monkeypatch.setattr(polled_log, "_handshake", counted)
    kubeconfig = server.write_kubeconfig(tmp_path / "kc", ca_pem=authority.cert_pem.bytes())
    client = await KubeClient.create(PodCollectorSettings(kubeconfig=kubeconfig, max_opening=2))
    logs: list[Any] = []
    try:
        logs = list(await asyncio.gather(*(client.open_log("demo-system", pod.name, "app", None, False,
                                                           poll_interval=0.05) for pod in pods)))
        assert most == 2
        assert all(isinstance(log, PolledLog) for log in logs)
        for pod, log in zip(pods, logs, strict=True):
            async with asyncio.timeout(10):
                first = await log.read(1 << 16)
            assert first.endswith(f" first of {pod.name}\n".encode())
    finally:
        for log in logs:
            log.close()
        await client.close()
        await server.stop()
