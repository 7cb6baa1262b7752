"""Helpers for the file collector's integration tests: CRI writers, settings, reading logs.raw back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.files.metrics import FileMetrics
from collectors.files.service import run_file_collector
from commands.broker import EmbeddedBroker
from core.models import decode_raw_chunks, raw_line_bytes
from core.settings import Settings, load_settings
from core.topics import RAW
from tests.support.kafka import read_topic

TIME = b"2025-06-10T08:25:41.630702460Z"


def cri(content: bytes, stream: bytes = b"stdout", tag: bytes = b"F") -> bytes:
    return TIME + b" " + stream + b" " + tag + b" " + content + b"\n"


def pod_log(root: Path, ns: str, pod: str, container: str = "app", restart: int = 0) -> Path:
    directory = root / f"{ns}_{pod}_0000aaaa-bbbb-cccc-dddd-{abs(hash(pod)) % 10**12:012d}" / container
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{restart}.log"


def collector_settings(broker: EmbeddedBroker, tmp_path: Path, **collector: Any) -> Settings:
    config = {"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")], "checkpoint_dir": str(tmp_path / "ckpt"),
              "metrics_port": 0, "rescan_interval": 0.2, "flush_interval": 0.05, "checkpoint_interval": 0.5,
              "node_name": "node-1", **collector}
    return load_settings(environ={}, kafka={"brokers": broker.bootstrap, "partitions": 2}, collector=config)


@dataclass(frozen=True)
class Line:
    stream_id: str
    position: int
    data: bytes
    stream: str
    flags: int
    source: tuple[tuple[str, Any], ...]

    @property
    def src(self) -> dict[str, Any]:
        return dict(self.source)


async def read_lines(settings: Settings, timeout: float = 30.0) -> list[Line]:
    records = await read_topic(settings.kafka.brokers, settings.topic(RAW), timeout=timeout)
    out: list[Line] = []
    for _partition, _offset, _key, value in records:
        for chunk in decode_raw_chunks(value):
            source = tuple(sorted(chunk.source.items()))
            out.extend(Line(chunk.stream_id, e[0], raw_line_bytes(e), e[2], e[4], source) for e in chunk.lines)
    return out


async def wait_for_lines(settings: Settings, count: int, timeout: float = 60.0) -> list[Line]:
    """Poll logs.raw until at least `count` distinct (stream id, position) pairs arrived."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = await read_lines(settings)
        if len({(ln.stream_id, ln.position) for ln in lines}) >= count:
            return lines
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(lines)} of {count} lines arrived in {timeout}s")
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def running_collector(settings: Settings, metrics: FileMetrics | None = None) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_file_collector(settings, stop, metrics))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
