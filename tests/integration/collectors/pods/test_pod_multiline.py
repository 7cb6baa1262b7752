"""The pod collector joins multiline records per container log, across a log connection cut mid-record.

Against the Kubernetes API test server (tests/support/kube_api.py) and a real broker: a Python
traceback is written in two parts with the follow connection cut between them; the record must come
out whole, once, at the position of its first line, and the last record by the flush timeout (2 s: longer
than a reconnect on a loaded machine, which would otherwise close the open record).
"""

from __future__ import annotations

from pathlib import Path

from commands.broker import EmbeddedBroker
from core.settings import load_settings
from tests.integration.collectors.pods.conftest import pod_settings, running_collector, wait_for_lines
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for

TRACEBACK = ["ERROR:shop.payments:charge failed", "Traceback (most recent call last):",
             '  File "/app/shop/payments.py", line 42, in charge', "    gateway.call(order)",
             "TimeoutError: read timed out"]


async def test_traceback_joined_across_a_cut_connection(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                        tmp_path: Path) -> None:
    pod = kube.add_pod("payments")
    kube.log(pod, "app", ["INFO:shop:started", *TRACEBACK[:3]])
    base = pod_settings(broker, kube, tmp_path)
    settings = load_settings(environ={}, kafka=base.kafka.model_dump(), pods=base.pods.model_dump(mode="json"),
                             multiline={"rules": [{"detectors": ["python"], "flush_timeout": "2s"}]})
    async with running_collector(settings) as run:
        await wait_for_lines(broker, 1)
        kube.cut_next(pod, "app", "eof")
        kube.log(pod, "app", [*TRACEBACK[3:], "INFO:shop:recovered"])
        await wait_for(lambda: run.value("logweave_pod_collector_stream_reconnects_total") >= 1, what="reconnect")
        got = await wait_for_lines(broker, 3)
    sid = f"pod:{pod.uid}:app:0"
    assert got.texts(sid) == ["INFO:shop:started", "\n".join(TRACEBACK), "INFO:shop:recovered"]
    positions = [p for p, _, _ in got.lines[sid]]
    assert positions == sorted(set(positions))
