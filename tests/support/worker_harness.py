"""Drive a real `faust -A app worker` process: feed raw chunks, restart it, read its outputs back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from commands.broker import EmbeddedBroker, free_port
from core.models import RawChunk, decode_closed_traces, make_raw_line
from core.settings import KafkaSettings, Settings, load_settings
from core.topics import PARSED, RAW, sink_topic
from kafka_io.publisher import ChunkPublisher
from kafka_io.topic_admin import prepare_worker_topics
from tests.support.kafka import group_assignment, read_topic
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess, wait_http_ok_in_thread, worker
from tests.support.quiescence import wait_until_quiet


def _segment_documents(segment: Path, attempts: int = 5) -> list[dict[str, Any]]:
    """The whole lines of a file-sink segment. A running worker may be mid-append (a partial last
    line is left out), and a restarted one truncates what its killed predecessor wrote past its
    recorded position and writes it again: a read crossing that can mix old and new bytes, so a line
    that does not parse is read again (the writer's next state is consistent)."""
    for attempt in range(attempts):
        data = segment.read_bytes()
        try:
            return [orjson.loads(line) for line in data[:data.rfind(b"\n") + 1].splitlines()]
        except orjson.JSONDecodeError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    return []


@dataclass
class WorkerHarness:
    """One worker (restartable under the same static member id) against a test broker."""

    broker: EmbeddedBroker
    workdir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    sinks: tuple[str, ...] = ("file",)
    web_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None
    publisher: ChunkPublisher | None = None
    positions: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            "LOGWEAVE_KAFKA__BROKERS": self.broker.bootstrap,
            "LOGWEAVE_WORKER__DATA_DIR": str(self.workdir / "worker-data"),
            "LOGWEAVE_SINKS__FILE__DIRECTORY": str(self.workdir / "out"),
            "LOGWEAVE_SINKS__ENABLED": ",".join(self.sinks),
            "LOGWEAVE_SINKS__BATCH_PERIOD": "0.2s",
            "LOGWEAVE_TRACES__CLOSE_CHECK_INTERVAL": "0.3s",
            **self.overrides,
        }

    @property
    def settings(self) -> Settings:
        """The worker's settings, as it will load them."""
        return load_settings(environ=self.env)

    @property
    def kafka_settings(self) -> KafkaSettings:
        return self.settings.kafka

    async def start(self) -> WorkerHarness:
        await self.launch()
        return await self.ready()

    async def launch(self) -> WorkerHarness:
        """Create the topics and start the process, without waiting for it (see `ready`)."""
        await prepare_worker_topics(self.settings)  # what `logweave prepare` does
        self.process = worker(self.workdir, self.env, self.web_port).start()
        return self

    async def ready(self, timeout: float = 90.0) -> WorkerHarness:
        """Wait until the launched worker answers /readyz (in a thread: the rebalance tests keep feeding
        from another task while a worker joins); then open the feeding publisher."""
        assert self.process is not None
        await wait_http_ok_in_thread(f"http://127.0.0.1:{self.web_port}/readyz", timeout, self.process)
        if self.publisher is None:
            self.publisher = ChunkPublisher(self.kafka_settings, "logs.raw", 64 << 20,
                                            create_topics=[])
            await self.publisher.start()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            self.process.stop(kill=kill)

    async def restart(self, kill: bool) -> None:
        self.stop(kill=kill)
        await self.start()

    async def close(self) -> None:
        self.stop()
        if self.publisher is not None:
            await self.publisher.stop()

    async def feed(self, docs: list[dict[str, Any] | bytes], stream: str = "s1",
                   source: dict[str, Any] | None = None, resend_from: int | None = None) -> None:
        """Publish `docs` as one raw chunk of `stream`, positions continuing where the stream left off."""
        assert self.publisher is not None
        start = self.positions.get(stream, 0) if resend_from is None else resend_from
        lines = []
        for i, doc in enumerate(docs):
            data = doc if isinstance(doc, bytes) else orjson.dumps(doc)
            lines.append(make_raw_line((start + i) * 100, data, "stdout", time.time_ns()))
        self.positions[stream] = max(self.positions.get(stream, 0), start + len(docs))
        src = source or {"kind": "file", "namespace": "ns", "pod": f"pod-{stream}", "container": "app"}
        ack = await self.publisher.publish(RawChunk(src, stream, time.time_ns(), lines))
        await ack

    def sink_documents(self) -> list[dict[str, Any]]:
        docs = []
        for segment in sorted((self.workdir / "out").rglob("*.ndjson")):
            docs.extend(_segment_documents(segment))
        return docs

    async def wait_until_quiet(self, timeout: float = 120.0) -> None:
        """Wait until the worker committed to the end of logs.raw, logs.parsed and its sink topics:
        whatever it was going to produce from what it was fed is then in the sinks."""
        settings = load_settings(environ=self.env)
        names = [settings.topic(t) for t in (RAW, PARSED, *(sink_topic(s) for s in self.sinks))]
        await wait_until_quiet(self.broker.bootstrap, settings.worker.app_id, names, timeout)

    async def closed_traces(self) -> list[dict[str, Any]]:
        records = await read_topic(self.broker.bootstrap, "traces.closed")
        return [summary for _, _, _, value in records for summary in decode_closed_traces(value)]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the worker's /metrics samples `name` with those labels (0 when there is none)."""
        from prometheus_client.parser import text_string_to_metric_families

        _, body = self.get("/metrics")
        return sum(sample.value for family in text_string_to_metric_families(body.decode())
                   for sample in family.samples
                   if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()))

    def get(self, path: str) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


async def wait_each_groups(workers: list[WorkerHarness], timeout: float = 90.0) -> None:
    """Wait until the group is settled with every worker holding logs.parsed partitions: a test that
    needs each worker to group some of what it feeds must not feed while one holds them all (a worker
    slow to join on a loaded machine can find every line grouped by the other)."""
    settings = workers[0].settings
    parsed = settings.topic(PARSED)

    async def each_holds_some() -> dict[str, dict[str, list[int]]] | None:
        members = await group_assignment(workers[0].broker.bootstrap, settings.worker.app_id)
        return members if len(members) == len(workers) and all(t.get(parsed) for t in members.values()) else None

    await wait_for(each_holds_some, timeout=timeout, what=f"each of {len(workers)} workers holding {parsed} partitions")


FENCE_LINE = "not yet persisted are dropped"  # what a revoke that dropped table updates logs (tables/trace_table.py)


def dropped_unpersisted(worker: WorkerHarness) -> bool:
    """Whether a revoke of `worker`'s partitions dropped table updates waiting for their persist (its log says so)."""
    assert worker.process is not None
    return FENCE_LINE in worker.process.log_path.read_text(errors="replace")


async def join_until_a_revoke_drops(first: WorkerHarness, joiners: list[WorkerHarness],
                                    timeout: float = 120.0) -> list[WorkerHarness]:
    """Start `joiners` one at a time while `first` groups what it is fed with its persists held back, each
    join a revoke of `first`'s partitions, until a revoke dropped updates waiting for their persist; the
    workers started, `first` included. A revoke that lands just after one of `first`'s persists, before it
    grouped anything new, finds nothing waiting (under `make test-under-load` a join came 80 ms after such
    a persist): then the next one joins. The caller keeps feeding meanwhile and checks
    `dropped_unpersisted(first)` afterwards (none of the joins may have found anything)."""
    started = [first]
    for joining in joiners:
        await joining.launch()
        started.append(joining)
        await joining.ready(timeout)
        await wait_each_groups(started, timeout)
        if dropped_unpersisted(first):
            break
    return started
