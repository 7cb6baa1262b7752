"""200 pods streamed at once by the collector as a process (`python -m collectors.pods`), memory bounded.

The collector runs as a user runs it, configured through LOGWEAVE_* variables, scraped on its
metrics port, and stopped with SIGTERM. The test server holds 200 pods with 3,000 lines each
(about 143 MiB); the collector's peak RSS must stay far below what buffering it all would take.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from pathlib import Path

from commands.broker import EmbeddedBroker, free_port
from tests.bench.measure import peak_rss_mib
from tests.integration.collectors.pods.conftest import collected
from tests.support.kube_api import FakeKubeApi, prefill
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, base_env

PODS, LINES = 200, 3000
RSS_LIMIT_MIB = 240  # measured ~180-210; buffering the 143 MiB of logs as lines would take over 400


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("logweave_pod_collector") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_200_pods_stream_at_once_with_bounded_memory(broker: EmbeddedBroker, tmp_path: Path) -> None:
    kube = await FakeKubeApi(max_piece=8192).start()
    try:
        total = prefill(kube, PODS, LINES, 250)
        metrics_port = free_port()
        env = base_env({
            "LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_KAFKA__PARTITIONS": "1",
            "NAMESPACE": "demo-system", "SELECTOR": "app=snowplow",
            "LOGWEAVE_PODS__KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            "LOGWEAVE_PODS__METRICS_PORT": str(metrics_port), "LOGWEAVE_PODS__MAX_STREAMS": "250",
            "LOGWEAVE_PODS__PENDING_BYTES": "4MiB", "LOGWEAVE_PODS__BUFFER_BYTES": "8MiB",
        })
        proc = ManagedProcess("pod-collector", [sys.executable, "-m", "collectors.pods"], env,
                              tmp_path / "pod-collector.log", Path.cwd()).start()
        peak_open = 0.0

        def progress() -> bool:
            nonlocal peak_open
            assert proc.alive(), proc.log_tail()
            try:
                figures = scrape(metrics_port)
            except OSError:
                return False
            peak_open = max(peak_open, figures.get("logweave_pod_collector_streams_open", 0))
            return figures.get("logweave_pod_collector_lines_published_total", 0) >= total

        try:
            await wait_for(progress, timeout=120, what=f"{total} lines published")
            figures = scrape(metrics_port)
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.stop()
        assert proc.process is not None and proc.process.returncode == 0, proc.log_tail()
        assert "pod collector stopped after publishing" in proc.log_tail()
    finally:
        await kube.stop()
    assert figures["logweave_pod_collector_pods_watched"] == PODS
    assert peak_open == PODS
    assert rss < RSS_LIMIT_MIB, f"peak RSS {rss:.0f} MiB for {total * 250 / 2**20:.0f} MiB of logs"
    got = await collected(broker)
    assert len(got.lines) == PODS
    for sid, entries in got.lines.items():
        assert [int(t.split('"n":')[1].split(",")[0]) for _, t, _ in entries] == list(range(LINES)), sid
    await asyncio.sleep(0)
