"""A worker whose group coordination dies exits with one line; an empty assignment is "no partitions".

Both run the real `faust -A app worker` against the embedded broker through tests/support/kafka_front.py,
which replaces the member assignment in the broker's SyncGroup replies: no broker here sends a
garbled or an empty assignment on demand, and the incident this covers (a leader that got an empty
assignment on a first join, after which aiokafka's coordination task died decoding it and the worker
stayed up and unready until the test timed out) happened once, by chance.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.broker import EmbeddedBroker
from core.startup import EXIT_COORDINATION
from tests.support.kafka_front import KafkaFront
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess
from tests.support.worker_harness import WorkerHarness

EXIT_BOUND = 15.0  # seconds from the bad SyncGroup reply to the worker's exit (it takes well under 1 s)


@pytest.fixture
def front(broker: EmbeddedBroker) -> Iterator[KafkaFront]:
    started = KafkaFront(broker.kafka_port).start()
    try:
        yield started
    finally:
        started.stop()


def through(front: KafkaFront, broker: EmbeddedBroker, workdir: Path, **overrides: str) -> WorkerHarness:
    workdir.mkdir()
    harness = WorkerHarness(broker, workdir, {"LOGWEAVE_KAFKA__BROKERS": front.bootstrap, **overrides})
    return harness


def exited(process: ManagedProcess | None) -> bool:
    return process is not None and not process.alive()


async def test_a_worker_whose_coordination_dies_exits_with_one_line(
        broker: EmbeddedBroker, front: KafkaFront, tmp_path: Path) -> None:
    """Injected: every SyncGroup reply carries a one-byte assignment (0x00), too short for the
    assignment's int16 version, so aiokafka's decode fails with the incident's own error
    (`struct.error: unpack requires a buffer of 2 bytes`) and its coordination task dies. One byte,
    not zero: an empty assignment is legal and now means no partitions (the next test)."""
    front.sync_assignment = b"\x00"
    worker = through(front, broker, tmp_path / "worker")
    try:
        await worker.launch()
        process = worker.process
        assert process is not None
        await wait_for(lambda: front.sync_replies, timeout=120, what="the worker's SyncGroup",
                       last_seen=process.log_tail)
        garbled_at = front.sync_replies[0][0]
        await wait_for(lambda: exited(process), timeout=EXIT_BOUND, what="the worker to exit",
                       last_seen=process.log_tail)
        took = time.monotonic() - garbled_at
        output = process.log_path.read_text()
        assert process.process is not None and process.process.returncode == EXIT_COORDINATION, output[-3000:]
        # faust logs what a worker prints to stderr: "[time] [pid] [WARNING] logweave worker: ..."
        lines = [line[line.index("logweave worker:"):].rstrip() for line in output.splitlines()
                 if "logweave worker:" in line]
        assert lines == [
            "logweave worker: Kafka group coordination for group 'logweave' died on an unexpected error "
            "(struct.error: unpack requires a buffer of 2 bytes); this member can no longer join its group; "
            f"exiting with status {EXIT_COORDINATION} so that it is restarted"], output[-3000:]
        print(f"\nworker exited {took:.2f} s after the garbled SyncGroup reply")
    finally:
        await worker.close()


async def test_a_member_given_an_empty_assignment_idles_then_takes_partitions(
        broker: EmbeddedBroker, front: KafkaFront, tmp_path: Path) -> None:
    """Injected: the first SyncGroup reply carries a zero-length assignment, which a Kafka broker
    sends a member that the leader's plan leaves out. The worker must take it as no partitions (not
    die decoding it, as aiokafka did), stay up, and take partitions at the next rebalance, here the
    one a second worker's join starts; every line fed then reaches the shared sink."""
    front.sync_assignment, front.sync_rewrites_left = b"", 1
    shared = {"LOGWEAVE_KAFKA__PARTITIONS": "4", "LOGWEAVE_SINKS__FILE__DIRECTORY": str(tmp_path / "out"),
              "LOGWEAVE_TRACES__GAP": "1h", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}
    first = through(front, broker, tmp_path / "first", **shared)
    second = through(front, broker, tmp_path / "second", **shared)
    try:
        await first.launch()
        assert first.process is not None
        await wait_for(lambda: front.sync_replies, timeout=120, what="the first worker's SyncGroup",
                       last_seen=first.process.log_tail)
        await wait_for(lambda: "assigned this member nothing" in first.process.log_tail(200), timeout=30,  # type: ignore[union-attr]
                       what="the empty assignment taken", last_seen=first.process.log_tail)
        assert front.sync_replies[0][2], "the broker's own reply was empty already"
        await first.ready(timeout=90)
        await second.start()
        assert first.process.alive(), first.process.log_tail()
        now_ns = time.time_ns()
        docs = [{"traceId": f"t{n % 40}", "time_ns": now_ns, "n": n, "msg": f"line {n}"} for n in range(400)]
        for part in range(8):  # eight streams: keys spread over the four partitions
            await first.feed(docs[part * 50:(part + 1) * 50], stream=f"s{part}")

        def delivered() -> int:
            return len({doc["n"] for doc in _documents(tmp_path / "out")})

        await wait_for(lambda: delivered() == len(docs), timeout=120, what="every line in the shared sink",
                       last_seen=delivered)
        first_log = first.process.log_path.read_text()
        later = first_log[first_log.index("assigned this member nothing"):]
        assert re.search(r"\| logs\.raw +\| \{\d", later), later[-3000:]  # faust's table of assigned partitions
        assert "logweave worker:" not in first_log and first.process.alive()
    finally:
        await second.close()
        await first.close()


def _documents(directory: Path) -> list[dict[str, object]]:
    import orjson

    return [orjson.loads(line) for segment in sorted(directory.rglob("*.ndjson"))
            for line in segment.read_bytes()[:segment.read_bytes().rfind(b"\n") + 1].splitlines()]
