"""Where the live benchmark watches lines arrive: the file sink's output directory, or a Kafka topic.

Both run in a thread beside the benchmark and stamp each line with the wall-clock time they saw it
(the writers stamp theirs with the same clock). `SinkDirectoryTail` polls the sink's
`<topic>-<partition>/*.ndjson` segments every `interval` seconds and reads only what was appended,
so an arrival is stamped at most `interval` late; `KafkaTopicTail` consumes a topic from the
beginning with librdkafka (the peer's output, one message per line).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.bench.live_stats import Arrivals


class SinkDirectoryTail(threading.Thread):
    def __init__(self, directory: Path, interval: float = 0.02) -> None:
        super().__init__(name="sink-tail", daemon=True)
        self.directory = directory
        self.interval = interval
        self.arrivals = Arrivals()
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}
        self._halt = threading.Event()

    def segments(self) -> list[str]:
        found = []
        try:
            partitions = [entry.path for entry in os.scandir(self.directory) if entry.is_dir()]
        except FileNotFoundError:
            return []
        for partition in partitions:
            found += [entry.path for entry in os.scandir(partition) if entry.name.endswith(".ndjson")]
        return sorted(found)

    def poll(self) -> None:
        for path in self.segments():
            offset = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            now = time.time_ns()
            self._offsets[path] = offset + len(data)
            data = self._partial.pop(path, b"") + data
            cut = data.rfind(b"\n") + 1
            if cut < len(data):
                self._partial[path] = data[cut:]
            for line in data[:cut].splitlines():
                self.arrivals.add(line, now)

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval)
        self.poll()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class KafkaTopicTail(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(name="kafka-tail", daemon=True)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.arrivals = Arrivals()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"live-tail-{os.getpid()}",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                                   "auto.offset.reset": "earliest"})
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                messages = self._consumer.consume(num_messages=2000, timeout=0.05)
                now = time.time_ns()
                for message in messages:
                    value = message.value()
                    if message.error() is None and value is not None:
                        self.arrivals.add(value, now)
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)
