"""Everything at once: lines keep coming while streams are cut, watches close or expire, containers
restart and pods are deleted. Every line of every container instance must arrive exactly once, in order."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from commands.broker import EmbeddedBroker
from tests.integration.collectors.pods.conftest import pod_settings, running_collector, wait_for_lines
from tests.support.kube_api import FakeKubeApi, FakePod

SEEDS = [3, 11] + [pytest.param(seed, marks=pytest.mark.slow) for seed in range(20, 30)]


@pytest.mark.parametrize("seed", SEEDS)
async def test_no_loss_no_duplicates_under_disruption(broker: EmbeddedBroker, kube: FakeKubeApi,
                                                      tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    pods = [kube.add_pod(f"chaos-{i}", containers=("app", "side")) for i in range(12)]
    expected: dict[str, list[str]] = {}
    counter = 0

    def emit(pod: FakePod, container: str, n: int) -> None:
        nonlocal counter
        c = pod.containers[container]
        sid = f"pod:{pod.uid}:{container}:{c.restart_count}"
        texts = [f"{sid} #{counter + i} " + "z" * rng.randint(0, 300) for i in range(n)]
        counter += n
        kube.log(pod, container, texts)
        expected.setdefault(sid, []).extend(texts)


    def caught_up(pod: FakePod, container: str) -> bool:
        """Every line of the container's current instance has gone out to the collector."""
        current = pod.containers[container].current
        return current.sent >= len(current.lines)

    settings = pod_settings(broker, kube, tmp_path, chunk_lines=50, flush_interval=0.02)
    async with running_collector(settings) as run:
        for step in range(150):
            pod = rng.choice(pods)
            container = rng.choice(("app", "side"))
            action = rng.random()
            if step in (50, 100):
                kube.expire_watches()
            if action < 0.12:
                kube.cut_next(pod, container, rng.choice(("eof", "abort")))
            elif action < 0.16:
                kube.close_watches()
            elif action < 0.18:
                kube.expire_watches()
            elif action < 0.22 and caught_up(pod, container):
                # the API serves the current and the previous instance only: a second restart before
                # the collector read the first instance to its end would strand it (kubelet's crash-loop
                # backoff of 10 s and more makes that rare in a cluster; here we wait for the reader)
                kube.restart(pod, container)
            emit(pod, container, rng.randint(1, 40))
            if rng.random() < 0.03:  # deleted right after logging: its streams must read what is left
                kube.delete(pod)
                pods[pods.index(pod)] = kube.add_pod(f"chaos-new-{step}", containers=("app", "side"))
            await asyncio.sleep(0.02 if step % 10 else 0.2)
        total = sum(len(v) for v in expected.values())
        got = await wait_for_lines(broker, total, timeout=60)
        assert run.value("logweave_pod_collector_stream_reconnects_total") > 5
        assert run.value("logweave_pod_collector_watch_restarts_total", reason="expired") >= 1
    for sid, texts in expected.items():
        assert got.texts(sid) == texts, sid
    assert set(got.lines) == set(expected)
    for entries in got.lines.values():
        positions = [p for p, _, _ in entries]
        assert positions == sorted(set(positions))
