"""The pod collector against the Kubernetes API test server and a real broker, read back from logs.raw."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from collectors.pods import service
from collectors.pods.timestamps import format_rfc3339nano
from commands.broker import EmbeddedBroker
from kafka_io.partition_batcher import PartitionBatcher
from kafka_io.publisher import ChunkPublisher
from tests.integration.collectors.pods.conftest import (
    collected,
    pod_settings,
    running_collector,
    wait_for_lines,
)
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for


async def test_pods_added_and_deleted_while_running(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                    tmp_path: Path) -> None:
    first = kube.add_pod("web-1", {"app": "snowplow", "team": "a", "other": "x"})
    kube.add_pod("unrelated", {"app": "other"})
    kube.log(first, "app", [f'{{"n":{i}}}' for i in range(5)])
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_for(lambda: kube.followers.get(("web-1", "app"), 0) == 1, what="web-1 followed")
        second = kube.add_pod("web-2", node="node-7")
        await wait_for(lambda: kube.followers.get(("web-2", "app"), 0) == 1, what="web-2 followed")
        kube.log(second, "app", [f"second {i}" for i in range(3)])
        kube.log(first, "app", [f'{{"n":{i}}}' for i in range(5, 8)])
        got = await wait_for_lines(broker, 11)
        kube.log(first, "app", ["last words"])
        kube.delete(first)
        await wait_for(lambda: kube.followers.get(("web-1", "app"), 0) == 0, what="web-1 stream closed")
        await wait_for(lambda: run.value("logweave_pod_collector_pods_watched") == 1, what="one pod left")
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


async def test_label_changes_move_a_pod_in_and_out_of_the_selector(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                   tmp_path: Path) -> None:
    pod = kube.add_pod("moving", {"app": "snowplow"})
    kube.log(pod, "app", ["in 1", "in 2"])
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_for_lines(broker, 2)
        kube.relabel(pod, {"app": "elsewhere"})
        await wait_for(lambda: kube.followers.get(("moving", "app"), 0) == 0, what="stream stopped")
        assert run.value("logweave_pod_collector_pods_watched") == 0
        kube.log(pod, "app", ["while out of scope"])
        outsider = kube.add_pod("joins-later", {"app": "elsewhere"})
        kube.log(outsider, "app", ["before joining"])
        kube.relabel(pod, {"app": "snowplow"})
        await wait_for(lambda: kube.followers.get(("moving", "app"), 0) == 1, what="stream resumed")
        kube.log(pod, "app", ["in 3"])
        kube.relabel(outsider, {"app": "snowplow", "team": "b"})
        await wait_for(lambda: kube.followers.get(("joins-later", "app"), 0) == 1, what="outsider followed")
        kube.log(outsider, "app", ["after joining"])
        got = await wait_for_lines(broker, 5)
    assert got.texts(f"pod:{pod.uid}:app:0") == ["in 1", "in 2", "in 3"]
    # a pod that joins is read from its start (like one present at start-up); its labels travel along
    assert got.texts(f"pod:{outsider.uid}:app:0") == ["before joining", "after joining"]
    assert got.sources[f"pod:{outsider.uid}:app:0"]["labels"] == {"app": "snowplow", "team": "b"}


async def test_watch_closed_by_server_and_bookmarks(broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path) -> None:
    a = kube.add_pod("a")
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_for(lambda: kube.open_watches == 1, what="watch open")
        kube.bookmark()
        bookmarked = kube.rv
        kube.close_watches()  # after the bookmark in the same stream: the collector sees it first
        b = kube.add_pod("b")  # between the watches: replayed from the resourceVersion on re-watch
        await wait_for(lambda: len(kube.watched_from) == 2, what="re-watch")
        assert kube.watched_from[1] == bookmarked  # resumed from the bookmark's resourceVersion
        await wait_for(lambda: kube.followers.get(("b", "app"), 0) == 1, what="b followed after re-watch")
        kube.log(a, "app", ["a1"])
        kube.log(b, "app", ["b1"])
        got = await wait_for_lines(broker, 2)
        assert run.value("logweave_pod_collector_watch_restarts_total", reason="closed") >= 1
    assert kube.requests["list"] == 1  # resumed from the resourceVersion, no re-list
    assert kube.requests["watch"] >= 2
    assert sorted(got.all_texts()) == ["a1", "b1"]


async def test_410_gone_relists_and_reconciles(broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path) -> None:
    stays = kube.add_pod("stays")
    leaves = kube.add_pod("leaves")
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_for(lambda: kube.followers.get(("leaves", "app"), 0) == 1, what="both followed")
        kube.log(leaves, "app", ["leaves 1"])
        await wait_for_lines(broker, 1)
        kube.expire_watches()  # compaction: the collector's resourceVersion is gone; events are lost
        kube.delete(leaves)
        arrives = kube.add_pod("arrives")
        kube.log(arrives, "app", ["arrives 1"])
        kube.log(stays, "app", ["stays 1"])
        await wait_for(lambda: run.value("logweave_pod_collector_watch_restarts_total", reason="expired") >= 1,
                       what="410 seen")
        await wait_for(lambda: kube.followers.get(("arrives", "app"), 0) == 1, what="arrives followed")
        await wait_for(lambda: run.value("logweave_pod_collector_pods_watched") == 2, what="reconciled")
        got = await wait_for_lines(broker, 3)
    assert kube.requests["list"] >= 2
    assert sorted(got.all_texts()) == ["arrives 1", "leaves 1", "stays 1"]


async def _cut_and_resume(broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path, mode: str) -> None:
    pod = kube.add_pod("chatty")
    base = 1_780_000_000_000_000_000
    # several lines share a microsecond (and one a nanosecond): positions must stay reproducible
    stamps = [base + i // 3 * 1000 + i % 3 for i in range(30)]
    kube.log(pod, "app", [f"line {i:03d} " + "y" * (i * 7 % 50) for i in range(30)], stamps=stamps)
    async with running_collector(pod_settings(broker, kube, tmp_path)) as run:
        await wait_for_lines(broker, 30)
        for round_ in range(3):
            kube.cut_next(pod, "app", mode)
            start = 30 + round_ * 20
            more = [base + 20_000 + (start + i) // 4 * 1000 for i in range(20)]  # 4 lines per microsecond
            kube.log(pod, "app", [f"line {start + i:03d} more" for i in range(20)], stamps=more)
            await wait_for(lambda n=round_: run.value("logweave_pod_collector_stream_reconnects_total") >= n + 1,
                           what="reconnect")
        got = await wait_for_lines(broker, 90)
        await wait_for(lambda: kube.followers.get(("chatty", "app"), 0) == 1, what="following again")
        assert run.value("logweave_pod_collector_duplicate_lines_total") > 0  # the replay was deduplicated
    sid = f"pod:{pod.uid}:app:0"
    texts = got.texts(sid)
    assert len(texts) == 90
    assert [t.split()[1] for t in texts] == [f"{i:03d}" for i in range(90)]
    positions = [p for p, _, _ in got.lines[sid]]
    assert positions == sorted(set(positions))
    assert positions[:4] == [base // 1000 * 1000, base // 1000 * 1000 + 1, base // 1000 * 1000 + 2,
                             base // 1000 * 1000 + 1000]


async def test_log_stream_closed_mid_line_resumes_without_loss_or_duplicates(
        broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path) -> None:
    await _cut_and_resume(broker, kube, tmp_path, "eof")


async def test_log_connection_aborted_mid_line_resumes_without_loss_or_duplicates(
        broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path) -> None:
    await _cut_and_resume(broker, kube, tmp_path, "abort")


async def test_multi_container_pod_and_init_containers(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                       tmp_path: Path) -> None:
    pod = kube.add_pod("multi", containers=("app", "sidecar", "proxy"), init_containers=("setup",), running=False)
    kube.log(pod, "setup", ["init done"])
    async with running_collector(pod_settings(broker, kube, tmp_path, include_init_containers=True)):
        await wait_for(lambda: kube.requests["watch"] >= 1, what="watching")
        kube.start_containers(pod)
        for name in ("app", "sidecar", "proxy"):
            kube.log(pod, name, [f"{name} {i}" for i in range(4)])
        got = await wait_for_lines(broker, 13)
    for name in ("app", "sidecar", "proxy"):
        assert got.texts(f"pod:{pod.uid}:{name}:0") == [f"{name} {i}" for i in range(4)]
        assert got.sources[f"pod:{pod.uid}:{name}:0"]["container"] == name
    assert got.texts(f"pod:{pod.uid}:setup:0") == ["init done"]


async def test_container_restart_starts_a_new_stream(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                     tmp_path: Path) -> None:
    pod = kube.add_pod("crashy")
    kube.log(pod, "app", ["run0 a", "run0 b"])
    async with running_collector(pod_settings(broker, kube, tmp_path)):
        await wait_for_lines(broker, 2)
        kube.log(pod, "app", ["run0 last"])
        kube.restart(pod, "app")
        kube.log(pod, "app", ["run1 a"])
        await wait_for(lambda: kube.followers.get(("crashy", "app"), 0) == 1, what="new instance followed")
        kube.log(pod, "app", ["run1 b"])
        kube.restart(pod, "app")
        kube.log(pod, "app", ["run2 a"])
        got = await wait_for_lines(broker, 6)
    assert got.texts(f"pod:{pod.uid}:app:0") == ["run0 a", "run0 b", "run0 last"]
    assert got.texts(f"pod:{pod.uid}:app:1") == ["run1 a", "run1 b"]
    assert got.texts(f"pod:{pod.uid}:app:2") == ["run2 a"]
    assert got.sources[f"pod:{pod.uid}:app:2"]["restart"] == 2


async def test_a_tick_its_poll_published_is_sent_as_it_ends(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partition batcher's linger is made ten minutes here: only the end of a tick whose poll published
    every stream's lines itself (the usual case) sends them, and they still reach logs.raw at once."""

    class SlowBatcher(PartitionBatcher):
        def __init__(self, publisher: ChunkPublisher, linger: float, *args: Any, **kwargs: Any) -> None:
            super().__init__(publisher, 600.0, *args, **kwargs)

    monkeypatch.setattr(service, "PartitionBatcher", SlowBatcher)
    pods = [kube.add_pod(f"web-{n}") for n in range(3)]
    async with running_collector(pod_settings(broker, kube, tmp_path, flush_interval=0.2)):
        for pod in pods:
            await wait_for(lambda pod=pod: kube.followers.get((pod.name, "app"), 0) == 1, what=f"{pod.name} followed")
        for n, pod in enumerate(pods):
            kube.log(pod, "app", [f"{pod.name} line {i}" for i in range(n + 1)])
        got = await wait_for_lines(broker, 6, timeout=60)
    assert sorted(got.all_texts()) == sorted(f"web-{n} line {i}" for n in range(3) for i in range(n + 1))


async def test_graceful_stop_publishes_lines_read_but_not_yet_due(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                 tmp_path: Path) -> None:
    pod = kube.add_pod("quiet")
    settings = pod_settings(broker, kube, tmp_path, flush_interval=60, chunk_lines=10_000)
    async with running_collector(settings) as run:
        await wait_for(lambda: kube.followers.get(("quiet", "app"), 0) == 1, what="followed")
        kube.log(pod, "app", ["pending 1", "pending 2"])
        await wait_for(lambda: pod.containers["app"].current.sent == 2, what="both lines sent to the collector")
        assert run.value("logweave_pod_collector_lines_published_total") == 0
    got = await collected(broker)
    assert got.texts(f"pod:{pod.uid}:app:0") == ["pending 1", "pending 2"]


async def test_unfinished_last_line_of_an_exited_container_is_published(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                        tmp_path: Path) -> None:
    pod = kube.add_pod("job")
    inst = pod.containers["app"].current
    async with running_collector(pod_settings(broker, kube, tmp_path)):
        await wait_for(lambda: kube.followers.get(("job", "app"), 0) == 1, what="followed")
        kube.log(pod, "app", ["done"])
        ts = time.time_ns() + 1_000_000
        inst.lines.append(format_rfc3339nano(ts).encode() + b" no newline at exit")  # then the container exits
        inst.stamps.append(ts)
        kube.terminate(pod, "app")
        got = await wait_for_lines(broker, 2)
    assert got.texts(f"pod:{pod.uid}:app:0") == ["done", "no newline at exit"]


async def test_namespace_list_all_namespaces_and_field_selector(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                                tmp_path: Path) -> None:
    pods = {(ns, node): kube.add_pod(f"p-{ns}-{node}", namespace=ns, node=node)
            for ns in ("a", "b", "c") for node in ("node-1", "node-2")}
    for (ns, node), pod in pods.items():
        kube.log(pod, "app", [f"{ns} {node}"])
    settings = pod_settings(broker, kube, tmp_path, namespace="a, b", field_selector="spec.nodeName=node-1")
    async with running_collector(settings) as run:
        got = await wait_for_lines(broker, 2)
        assert run.value("logweave_pod_collector_pods_watched") == 2
    assert sorted(got.all_texts()) == ["a node-1", "b node-1"]
    assert kube.requests["list"] == 2  # one list (then watch) per namespace

    async with running_collector(pod_settings(broker, kube, tmp_path, namespace="*")) as run:
        await wait_for(lambda: run.value("logweave_pod_collector_pods_watched") == 6, what="all namespaces")
        got = await wait_for_lines(broker, 6)
    # the second run resumes the streams the first one read (logs.positions): nothing is read twice
    assert sorted(got.all_texts()) == sorted(f"{ns} {node}" for ns, node in pods)
