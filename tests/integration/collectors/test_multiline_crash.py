"""kill -9 while a service writes Java stack traces: every record arrives whole, once per identity.

The collector runs as its own process with the `java` multiline detector; it is killed twice while a
writer appends records (one in four a 6-line stack trace). Afterwards every record is in logs.raw
exactly as written - never cut where a checkpoint fell - and a record sent twice (re-read after a
kill) has the same stream id and position both times, so the sinks' dedupe holds.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from tests.integration.collectors.file_helpers import (
    Line,
    collector_settings,
    cri,
    pod_log,
    read_lines,
    wait_for_lines,
)
from tests.integration.collectors.file_process import collector_process
from tests.support.polling import wait_for
from tests.support.processes import ManagedProcess

TRACE = ["java.lang.IllegalStateException: card declined for order {n}",
         "\tat com.example.shop.Payments.charge(Payments.java:42)",
         "\tat com.example.shop.CheckoutController.checkout(CheckoutController.java:77)",
         "Caused by: java.net.SocketTimeoutException: Read timed out",
         "\t... 3 common frames omitted"]


def record(n: int) -> list[str]:
    head = orjson.dumps({"seq": n, "level": "error" if n % 4 == 0 else "info"}).decode()
    return [head, *(line.format(n=n) for line in TRACE)] if n % 4 == 0 else [head]


class Writer(threading.Thread):
    """Writes records 0, 1, 2, ... as 17 lines every 10 ms, cut anywhere, until told to stop: records are
    often half written, so the collector holds open records across its checkpoints (the flush timeout,
    5 s, is far longer than a pause between writes). It runs until the test has killed the collector
    as often as it wants - a fixed count would end on its own on a fast machine or while a restart is
    slow - and on `stop` finishes the record it is in, so `written` records are whole in the file."""

    LIMIT = 100_000  # records: a test that never says stop ends here (about 2.5 min at full speed)

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.written = 0
        self.stop = threading.Event()

    def run(self) -> None:
        pending: list[bytes] = []
        while not self.stop.is_set() and self.written < self.LIMIT:
            while len(pending) < 17 and self.written < self.LIMIT:
                pending += [cri(line.encode()) for line in record(self.written)]
                self.written += 1
            self.append(pending[:17])
            del pending[:17]
            self.stop.wait(0.01)
        self.append(pending)  # the rest of the record the writer was in: every written record is whole

    def append(self, lines: list[bytes]) -> None:
        with open(self.path, "ab") as handle:
            handle.write(b"".join(lines))


async def test_kill_9_never_splits_a_joined_record(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "payments")
    settings = collector_settings(broker, tmp_path)

    def start() -> ManagedProcess:
        process = collector_process(settings, tmp_path / "collector.log")
        process.env["LOGWEAVE_MULTILINE__RULES"] = '[{"detectors": ["java"], "flush_timeout": "5s"}]'
        return process.start()

    collector = start()
    writer = Writer(path)
    writer.start()
    try:
        checkpoint = settings.collector.checkpoint_dir / "checkpoints.json"
        for progress in (600, 1_800):  # kill twice once records are flowing, just after a checkpoint save:
            await wait_for_lines(settings, progress, timeout=60)  # the save holds records still open
            saved = checkpoint.stat().st_mtime_ns
            await wait_for(lambda saved=saved: checkpoint.stat().st_mtime_ns != saved, what="the next checkpoint save",
                           timeout=30, interval=0.001)
            collector.kill()
            assert writer.is_alive(), "the writer reached its limit before the kill: nothing was killed mid-stream"
            collector = start()
        await wait_for_lines(settings, 2_600, timeout=60)  # the restarted collector follows the live writer
        writer.stop.set()
        await asyncio.to_thread(writer.join, 60)
        assert not writer.is_alive(), "the writer did not finish its last record within 60 s"
        total = writer.written
        await wait_for_lines(settings, total, timeout=60)
        assert collector.stop() == 0
    finally:
        writer.stop.set()
        if collector.alive():
            collector.kill()
    resent = check_records(await read_lines(settings), total, record)
    print(f"{total} records, {resent} re-sent after the kills")


def check_records(lines: list[Line], total: int, record: Callable[[int], list[str]]) -> int:
    """Every record 0..total-1 in `lines` exactly as `record(n)` wrote it, under one identity (a record
    sent twice is identical both times); returns how many were sent again."""
    seen: dict[tuple[str, int], bytes] = {}
    for line in lines:
        assert seen.setdefault((line.stream_id, line.position), line.data) == line.data, \
            "a record re-sent after a kill differs from the first send"
    heads = [data.split(b"\n", 1)[0] for data in seen.values()]
    cut = [(sid[-30:], pos, data[:60]) for (sid, pos), data in seen.items() if not data.startswith(b"{")]
    assert not cut, f"records cut at a checkpoint or a rotation: their tail arrived alone, e.g. {cut[:2]}"
    records = {orjson.loads(head)["seq"]: data.decode() for head, data in zip(heads, seen.values(), strict=True)}
    missing = sorted(set(range(total)) - set(records))
    assert not missing, f"records missing (or a trace line arrived as its own record): {missing[:10]}"
    assert len(seen) == total
    broken = [n for n, text in records.items() if text != "\n".join(record(n))]
    assert not broken, f"records not whole: {broken[:5]}"
    return len(lines) - len(seen)
