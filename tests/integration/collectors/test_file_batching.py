"""Many slowly written files share `logs.raw` records, and a kill -9 mid-stream loses and duplicates nothing.

A node's pod logs are each written a few lines at a time: records per stream per read would carry a
line or two each, and the worker pays per record. The collector gathers the new lines of all files
per partition for `collector.linger` into one multi-stream record (schema version 2).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import orjson
from aiokafka.partitioner import murmur2

from commands.broker import EmbeddedBroker
from core.models import decode_raw_chunks, raw_line_bytes
from core.topics import RAW
from tests.integration.collectors.file_helpers import collector_settings, cri, pod_log, wait_for_lines
from tests.integration.collectors.file_process import collector_process
from tests.support.kafka import read_topic
from tests.support.polling import wait_for

FILES = 100
ROUNDS = 40  # one line per file per round
PARTITIONS = 2


class SlowWriters(threading.Thread):
    """Appends one numbered line to every file every `period` seconds, as 100 live pods would."""

    def __init__(self, paths: list[Path], rounds: int, period: float) -> None:
        super().__init__(daemon=True)
        self.paths, self.rounds, self.period = paths, rounds, period
        self.written = 0

    def run(self) -> None:
        started = time.monotonic()
        for n in range(self.rounds):
            for i, path in enumerate(self.paths):
                seq = n * len(self.paths) + i
                with open(path, "ab") as handle:
                    handle.write(cri(b'{"traceId":"t%d","seq":%d,"pad":"%s"}' % (seq % 97, seq, b"x" * 40)))
                self.written += 1
            time.sleep(max(0.0, started + (n + 1) * self.period - time.monotonic()))


async def test_slowly_written_files_share_records_and_survive_kill_9(broker: EmbeddedBroker, tmp_path: Path) -> None:
    paths = [pod_log(tmp_path / "pods", "shop", f"api-{i:03d}") for i in range(FILES)]
    for path in paths:
        path.write_bytes(cri(b'{"traceId":"t","seq":-1}'))
    settings = collector_settings(broker, tmp_path, linger=0.2)
    log_path = tmp_path / "collector.log"
    collector = collector_process(settings, log_path).start()
    writer = SlowWriters(paths, ROUNDS, period=0.1)  # 10 lines/s per file, 1,000 lines/s in all
    total = FILES * ROUNDS
    try:
        await wait_for_lines(settings, FILES, timeout=60)  # following every file
        writer.start()
        await wait_for(lambda: writer.written >= total // 3, timeout=60, what=f"{total // 3} lines written")
        await wait_for(lambda: settings.collector.checkpoint_dir.joinpath("checkpoints.json").exists(),
                       what="the first checkpoint")
        collector.kill()  # SIGKILL mid-stream: chunks gathered or in flight are lost with it
        collector = collector_process(settings, log_path).start()
        await asyncio.to_thread(writer.join)
        await wait_for_lines(settings, FILES + total, timeout=90)
    finally:
        collector.kill()
    records = await read_topic(broker.bootstrap, settings.topic(RAW), timeout=30)
    partition_of: dict[str, set[int]] = {}
    marks: dict[str, int] = {}
    delivered: list[int] = []
    lines_in_records = 0
    for partition, _offset, key, value in records:  # partition by partition, in offset order
        assert key is None
        for chunk in decode_raw_chunks(value):
            assert (murmur2(chunk.stream_id.encode()) & 0x7FFFFFFF) % PARTITIONS == partition, \
                "a stream went to another partition than its key maps to"
            partition_of.setdefault(chunk.stream_id, set()).add(partition)
            lines_in_records += len(chunk.lines)
            for line in chunk.lines:  # the worker's dedupe: per stream, only above its high-water mark
                if line[0] > marks.get(chunk.stream_id, -1):
                    marks[chunk.stream_id] = line[0]
                    delivered.append(orjson.loads(raw_line_bytes(line))["seq"])
    assert sorted(delivered) == [-1] * FILES + list(range(total)), "the worker would miss or repeat lines"
    assert len(partition_of) == FILES and all(len(p) == 1 for p in partition_of.values())
    per_record = lines_in_records / len(records)
    streams = sum(len(decode_raw_chunks(value)) for *_, value in records) / len(records)
    print(f"{len(records)} records, {per_record:.1f} lines and {streams:.1f} streams per record")
    # 1,000 lines/s gathered for 0.2 s over 2 partitions: about 100 lines per record
    assert per_record >= 20 and streams >= 10
