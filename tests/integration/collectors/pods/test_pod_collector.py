"""The pod collector against the Kubernetes API test server and a real broker, read back from logs.raw."""

from __future__ import annotations

from pathlib import Path

from app.broker import EmbeddedBroker
from tests.integration.collectors.pods.conftest import (
    pod_settings,
    running_collector,
    wait_for_lines,
    wait_until,
)
from tests.support.kube_api import FakeKubeApi


async def test_pods_added_and_deleted_while_running(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                    tmp_path: Path) -> None:
    first = kube.add_pod("web-1", {"app": "snowplow", "team": "a", "other": "x"})
    kube.add_pod("unrelated", {"app": "other"})
    kube.log(first, "app", [f'{{"n":{i}}}' for i in range(5)])
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_until(lambda: kube.followers.get(("web-1", "app"), 0) == 1, what="web-1 followed")
        second = kube.add_pod("web-2", node="node-7")
        await wait_until(lambda: kube.followers.get(("web-2", "app"), 0) == 1, what="web-2 followed")
        kube.log(second, "app", [f"second {i}" for i in range(3)])
        kube.log(first, "app", [f'{{"n":{i}}}' for i in range(5, 8)])
        got = await wait_for_lines(broker, 11)
        kube.log(first, "app", ["last words"])
        kube.delete(first)
        await wait_until(lambda: kube.followers.get(("web-1", "app"), 0) == 0, what="web-1 stream closed")
        await wait_until(lambda: run.value("logweave_pod_collector_pods_watched") == 1, what="one pod left")
        got = await wait_for_lines(broker, 12)
    sid1 = f"pod:{first.uid}:app:0"
    sid2 = f"pod:{second.uid}:app:0"
    assert got.texts(sid1) == [f'{{"n":{i}}}' for i in range(8)] + ["last words"]
    assert got.texts(sid2) == [f"second {i}" for i in range(3)]
    assert set(got.lines) == {sid1, sid2}
    src = got.sources[sid2]
    assert src == {"kind": "pod-api", "namespace": "demo-system", "pod": "web-2", "pod_uid": second.uid,
                   "container": "app", "restart": 0, "node": "node-7", "labels": {"app": "snowplow"}}
    assert got.sources[sid1]["labels"] == {"app": "snowplow", "team": "a"}
    positions = [p for p, _, _ in got.lines[sid1]]
    assert positions == sorted(set(positions))
    assert all(p == ts // 1000 * 1000 + (p % 1000) for p, _, ts in got.lines[sid1])
