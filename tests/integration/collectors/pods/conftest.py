"""Helpers for the pod collector against the Kubernetes API test server (the `kube` fixture, tests/conftest.py)
and a real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.pods.metrics import PodMetrics
from collectors.pods.service import run_pod_collector
from commands.broker import EmbeddedBroker
from core.models import decode_raw_chunks
from core.settings import Settings, load_settings
from tests.support.kafka import read_topic
from tests.support.kube_api import FakeKubeApi
from tests.support.polling import wait_for


def pod_settings(broker: EmbeddedBroker, kube: FakeKubeApi, tmp_path: Path, **pods: Any) -> Settings:
    config = {"kubeconfig": str(kube.write_kubeconfig(tmp_path / "kubeconfig")), "config_mode": "kubeconfig",
              "metrics_port": 0, "flush_interval": 0.05, "backoff_initial": 0.05, "backoff_max": 0.5,
              "finish_grace": 5, "label_keys": ["app", "team"], **pods}
    return load_settings(environ={}, kafka={"brokers": broker.bootstrap, "partitions": 1}, pods=config)


@dataclass
class Collected:
    """What logs.raw holds: lines per stream id, in topic order, and each stream's source."""

    lines: dict[str, list[tuple[int, str, int]]] = field(default_factory=dict)  # sid -> (position, text, ts)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def texts(self, sid: str) -> list[str]:
        return [t for _, t, _ in self.lines.get(sid, [])]

    def all_texts(self) -> list[str]:
        return [t for entries in self.lines.values() for _, t, _ in entries]


async def collected(broker: EmbeddedBroker, topic: str = "logs.raw") -> Collected:
    out = Collected()
    for _, _, _, value in await read_topic(broker.bootstrap, topic, timeout=30):
        for chunk in decode_raw_chunks(value):
            out.sources[chunk.stream_id] = chunk.source
            out.lines.setdefault(chunk.stream_id, []).extend((e[0], e[1], e[3]) for e in chunk.lines)
    return out


async def wait_for_lines(broker: EmbeddedBroker, count: int, timeout: float = 30.0) -> Collected:
    """Poll logs.raw until it holds at least `count` lines."""
    last = 0

    async def enough() -> Collected | None:
        nonlocal last
        got = await collected(broker)
        last = sum(len(v) for v in got.lines.values())
        return got if last >= count else None

    return await wait_for(enough, timeout=timeout, interval=0.3, what=f"{count} lines on logs.raw",
                          last_seen=lambda: last)


@dataclass
class RunningCollector:
    task: asyncio.Task[None]
    stop: asyncio.Event
    metrics: PodMetrics

    def value(self, name: str, **labels: str) -> float:
        return self.metrics.value(name, **labels)


@contextlib.asynccontextmanager
async def running_collector(settings: Settings) -> AsyncIterator[RunningCollector]:
    stop = asyncio.Event()
    metrics = PodMetrics()
    task = asyncio.create_task(run_pod_collector(settings, stop, metrics))
    running = RunningCollector(task, stop, metrics)
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 40)
