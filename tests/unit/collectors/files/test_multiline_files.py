"""The file collector joins multiline records in real CRI files: per stream, after partial merging,
with checkpoints that never fall inside a record, so a restart reads an open record again whole.

The publisher is a stand-in handing out ack futures the test settles (as in test_collector.py): what
is under test is the collector's reading and checkpointing of real files, not Kafka.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from collectors.files.collector import FileCollector
from collectors.files.discovery import discover
from collectors.files.metrics import FileMetrics
from core.settings import load_settings
from kafka_io.publisher import ChunkAck
from tests.unit.collectors.files.test_collector import FakePublisher

TIME = b"2025-06-10T08:25:41.630702460Z"
JAVA = [b"ERROR payment failed", b"java.lang.IllegalStateException: card declined",
        b"\tat com.example.Payments.charge(Payments.java:42)", b"Caused by: java.net.SocketTimeoutException",
        b"\t... 3 common frames omitted"]


def collector_for(tmp_path: Path, **multiline: Any) -> tuple[Path, FakePublisher, FileCollector]:
    path = tmp_path / "pods" / "shop_api-1_0a1b2c" / "api" / "0.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = load_settings(environ={}, collector={"paths": [str(tmp_path / "pods" / "*" / "*" / "*.log")],
                                                    "checkpoint_dir": str(tmp_path / "ckpt")},
                             multiline={"rules": [{"detectors": ["java"], "namespaces": ["shop"], **multiline}]})
    publisher = FakePublisher()
    collector = FileCollector(settings.collector, publisher, FileMetrics(), settings.multiline)  # type: ignore[arg-type]
    return path, publisher, collector


async def pump(collector: FileCollector) -> None:
    collector.apply_scan(discover(collector.settings.paths, []))
    await collector.pump()


def cri(stream: bytes, text: bytes, tag: bytes = b"F") -> bytes:
    return TIME + b" " + stream + b" " + tag + b" " + text + b"\n"


def lines_of(publisher: FakePublisher) -> list[list[Any]]:
    return [line for chunk in publisher.chunks for line in chunk.lines]


async def test_joins_per_stream_after_partial_merging(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path)
    data = [cri(b"stdout", JAVA[0]), cri(b"stderr", b"stderr line one"), cri(b"stdout", JAVA[1]),
            cri(b"stdout", JAVA[2][:10], b"P"), cri(b"stderr", b"\tat looks.like.a.Frame(but:1)"),
            cri(b"stdout", JAVA[2][10:]), cri(b"stdout", JAVA[3]), cri(b"stdout", JAVA[4]),
            cri(b"stdout", b"INFO next request")]
    path.write_bytes(b"".join(data))
    await pump(collector)
    got = [(line[0], line[2], line[1]) for line in lines_of(publisher)]
    assert got == [(0, "stdout", "\n".join(j.decode() for j in JAVA))]
    # the stderr record and "INFO next request" are open (either may be continued): held, and not checkpointed
    (tailed,) = collector.files.values()
    assert tailed.safe_offset == len(data[0])
    with open(path, "ab") as handle:
        handle.write(cri(b"stderr", b"stderr line two") + cri(b"stdout", b"INFO done"))
    await pump(collector)
    got = [(line[0], line[2], line[1]) for line in lines_of(publisher)][1:]
    assert got == [(len(data[0]), "stderr", "stderr line one\n\tat looks.like.a.Frame(but:1)"),
                   (sum(map(len, data[:-1])), "stdout", "INFO next request")]
    collector.close()


async def test_checkpoint_never_splits_a_record_and_a_restart_reads_it_whole(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path)
    head = cri(b"stdout", b"INFO started") + cri(b"stdout", b"INFO ready")
    path.write_bytes(head + b"".join(cri(b"stdout", j) for j in JAVA[:3]))
    await pump(collector)
    assert [line[1] for line in lines_of(publisher)] == ["INFO started", "INFO ready"]
    for ack in publisher.acks:
        ack.set_result(ChunkAck(0, 1))
    await collector.save_checkpoint()
    (tailed,) = collector.files.values()
    saved = collector.checkpoints[tailed.stream_id]["offset"]
    assert saved == len(head)  # where the open record begins: nothing of it is behind the checkpoint
    collector.close()  # the process dies here (nothing flushed), as after kill -9

    with open(path, "ab") as handle:
        handle.write(b"".join(cri(b"stdout", j) for j in JAVA[3:]) + cri(b"stdout", b"INFO next"))
    _path2, restarted, collector2 = collector_for(tmp_path)
    await pump(collector2)
    got = [(line[0], line[1]) for line in lines_of(restarted)]
    whole = "\n".join(j.decode() for j in JAVA)
    assert got == [(saved, whole)]  # whole, at the position it would have had without the crash
    collector2.close()


async def test_an_idle_record_is_sent_after_the_flush_timeout(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path, flush_timeout=0.5)
    path.write_bytes(b"".join(cri(b"stdout", j) for j in JAVA))
    await pump(collector)
    assert lines_of(publisher) == []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not lines_of(publisher) and loop.time() < deadline:  # each pass checks the timeout, as the service does
        await asyncio.sleep(0.01)
        await collector.pump()
    assert [line[1] for line in lines_of(publisher)] == ["\n".join(j.decode() for j in JAVA)], \
        "the record was not sent within 10 s of its flush timeout"
    collector.close()
