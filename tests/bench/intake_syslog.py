"""The syslog rows of bench_intake: the intake's syslog TCP listener beside Debian's rsyslog (imtcp
-> omkafka) on the same broker, each fed the same octet-counted RFC 5424 messages over CLIENTS TCP
connections, and timed until every line is in Kafka: for the intake, its count of lines Kafka
acknowledged (/metrics); for rsyslog, the topic's end offsets (one Kafka message per line).
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.bench.measure import Row, cpu_seconds, peak_rss_mib
from tests.support.syslog_senders import start_rsyslog_kafka

CLIENTS = 8
_LINES = re.compile(r'^logweave_intake_lines_total\{protocol="syslog"\} ([0-9.e+]+)$', re.M)


def syslog_frames(count: int, line_bytes: int) -> bytes:
    """`count` octet-counted RFC 5424 messages whose MSG is a JSON log line."""
    pad = "x" * max(0, line_bytes - 170)
    frames = []
    for i in range(count):
        msg = orjson.dumps({"traceId": f"s-{i % 500}", "level": "info", "msg": f"syslog line {i}", "pad": pad})
        frame = b"<134>1 2026-12-02T10:00:00.123456Z bench-host bench-app 4242 - - " + msg
        frames.append(b"%d %s" % (len(frame), frame))
    return b"".join(frames)


async def send(port: int, payload: bytes) -> None:
    """`payload` split over CLIENTS connections at frame boundaries, written as fast as read."""
    pieces = _split_frames(payload, CLIENTS)

    async def client(piece: bytes) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for start in range(0, len(piece), 256 * 1024):
            writer.write(piece[start:start + 256 * 1024])
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(client(piece) for piece in pieces))


def _split_frames(payload: bytes, parts: int) -> list[bytes]:
    cuts, at, target = [0], 0, len(payload) // parts
    while at < len(payload):
        length, _, _ = payload[at:at + 12].partition(b" ")
        at += len(length) + 1 + int(length)
        if at - cuts[-1] >= target and len(cuts) < parts:
            cuts.append(at)
    cuts.append(len(payload))
    return [payload[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def intake_lines(http_port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    found = _LINES.search(text)
    return int(float(found.group(1))) if found else 0


async def topic_messages(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def _until(count: int, stored: object, timeout: float) -> float:
    """Poll `stored()` (sync or async) until it reaches `count`; the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = stored()  # type: ignore[operator]
        if asyncio.iscoroutine(value):
            value = await value
        if value >= count:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {value} of {count} syslog lines stored after {timeout}s")


def measure(name: str, pid: int, port: int, payload: bytes, lines: int, before: int, stored: object,
            note: str) -> Row:
    cpu0, began = cpu_seconds(pid), time.monotonic()

    async def run() -> float:
        await send(port, payload)
        return await _until(before + lines, stored, 300)

    ended = asyncio.run(run())
    return Row(name, lines, ended - began, cpu_seconds(pid) - cpu0, peak_rss_mib(pid), note)


def syslog_rows(workdir: Path, bootstrap: str, intake_pid: int, http_port: int, syslog_port: int,
                lines: int, line_bytes: int, run_prefix: str = "") -> list[Row]:
    """The intake's syslog TCP rate and rsyslog's on the same broker (each after a warm-up)."""
    warm, payload = syslog_frames(200, line_bytes), syslog_frames(lines, line_bytes)
    topic = f"{run_prefix}bench.rsyslog"
    rsyslog = start_rsyslog_kafka(workdir / "rsyslog", bootstrap, topic)
    try:
        stored_rsyslog = lambda: topic_messages(bootstrap, topic)  # noqa: E731
        stored_intake = lambda: intake_lines(http_port)  # noqa: E731
        asyncio.run(_wait_listening(rsyslog.input_port))
        asyncio.run(send(rsyslog.input_port, warm))
        asyncio.run(_until(200, stored_rsyslog, 60))
        asyncio.run(send(syslog_port, warm))
        asyncio.run(_until(200, stored_intake, 60))
        intake = measure("intake syslog TCP, RFC 5424 octet-counted x8", intake_pid, syslog_port, payload, lines,
                         200, stored_intake, "until Kafka acknowledged every line")
        peer = measure("rsyslog imtcp -> omkafka (peer)", rsyslog.process.pid, rsyslog.input_port, payload,
                       lines, 200, stored_rsyslog, "librdkafka of the confluent-kafka wheel; no parsing")
        assert rsyslog.process.poll() is None, rsyslog.log_tail()
        return [intake, peer]
    finally:
        rsyslog.stop()


async def _wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
