"""A worker whose group coordination dies exits with one line; an empty assignment is "no partitions".

Both run the real `faust -A app worker` against the embedded broker through tests/support/kafka_front.py,
which replaces the member assignment in the broker's SyncGroup replies: no broker here sends a
garbled or an empty assignment on demand, and the incident this covers (a leader that got an empty
assignment on a first join, after which aiokafka's coordination task died decoding it and the worker
stayed up and unready until the test timed out) happened once, by chance.
"""

from __future__ import annotations

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
