"""kill -9 during writing and rotation, the broker down for 10 s, 1,000 files: nothing lost, memory bounded."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from tests.integration.collectors.file_helpers import Line, collector_settings, pod_log, read_lines, wait_for_lines
from tests.integration.collectors.file_process import collector_process, killer
from tests.integration.collectors.file_writers import RotatingWriter, write_lines
from tests.support.polling import wait_for


def bytes_read(pid: int) -> int:
    """Bytes `pid` has read through read/pread calls so far (/proc/<pid>/io rchar)."""
    for row in Path(f"/proc/{pid}/io").read_text().splitlines():
        if row.startswith("rchar:"):
            return int(row.split()[1])
    raise KeyError("rchar")


def check_duplicates(lines: list[Line], total: int, max_duplicates: int) -> int:
    """Every seq present; a repeated (stream, position) is the identical line; few repeats."""
    seen: dict[tuple[str, int], bytes] = {}
    for ln in lines:
        assert seen.setdefault((ln.stream_id, ln.position), ln.data) == ln.data
    got = {int(orjson.loads(data)["seq"]) for data in seen.values()}
    assert got == set(range(total)), f"missing {sorted(set(range(total)) - got)[:10]}"
    assert len(seen) == total, "a line was re-sent under another identity"
    duplicates = len(lines) - len(seen)
    print(f"{total} lines, {duplicates} re-sent (same stream id and position)")
    assert duplicates <= max_duplicates
    return duplicates


async def test_kill_9_during_writing_and_rotation_then_restart(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "crash")
    settings = collector_settings(broker, tmp_path, rotated_grace=1.0)
    collector = collector_process(settings, tmp_path / "collector.log").start()
    total = 24_000
    writer = RotatingWriter(path, total, rate=3_000, rotate_every=5_000)
    writer.start()
    try:
        # A collector killed before it ever saved a checkpoint is a first start again, which skips files
        # rotated before it began (by design); so the first kill waits for the first checkpoint, not only
        # for the writer (a loaded machine may still be importing the collector at 2,500 lines).
        checkpoint = settings.collector.checkpoint_dir / "checkpoints.json"
        await wait_for(lambda: writer.written >= 2_500 and checkpoint.exists(), timeout=60,
                       what="2,500 lines written and the collector's first checkpoint saved")
        for written in (2_500, 4_990):  # the second kill lands right before the rotation at 5,000 lines
            await wait_for(lambda n=written: writer.written >= n, timeout=60, what=f"{written} lines written")
            collector.kill()
            collector = collector_process(settings, tmp_path / "collector.log").start()
        await asyncio.to_thread(writer.join)
        await wait_for_lines(settings, total, timeout=60)
        assert collector.stop() == 0  # a clean stop: whatever it still had in flight is sent
    finally:
        collector.kill()
    lines = await read_lines(settings)
    assert writer.rotations == 4
    check_duplicates(lines, total, max_duplicates=12_000)


async def test_kill_9_mid_copytruncate_sends_each_line_under_one_identity(broker: EmbeddedBroker,
                                                                         tmp_path: Path) -> None:
    """logrotate's copytruncate with the collector SIGKILLed between the copy and the truncation, and
    right after the truncation; restarted at once (so the rest of the rotation happens while it starts)
    or only once the restarted one follows the files. A copy holds the original's bytes, so its lines
    keep the original's identity: no line may reach logs.raw under two (stream id, position) pairs,
    and none may be missing."""
    path = tmp_path / "app" / "app.log"
    path.parent.mkdir()
    settings = collector_settings(broker, tmp_path, paths=[str(tmp_path / "app" / "*.log")], format="cri",
                                  rotated_grace=1.0, checkpoint_interval=0.3)
    log_path = tmp_path / "collector.log"
    procs = [collector_process(settings, log_path).start()]
    write_lines(path, 0, 1000)
    await wait_for_lines(settings, 1000)
    await wait_for(lambda: settings.collector.checkpoint_dir.joinpath("checkpoints.json").exists(),
                   what="the first checkpoint")
    # (rotation, step) -> whether the writer waits until the restarted collector follows the files
    kills = {(1, "copied"): True, (2, "truncated"): False, (3, "copied"): False, (5, "truncated"): True}

    during = killer(procs, lambda: collector_process(settings, log_path).start(), log_path, kills)

    total = 19_000
    writer = RotatingWriter(path, total, rate=3_000, rotate_every=3_000, mode="copytruncate", during=during,
                            first=1000)
    writer.start()
    try:
        await asyncio.to_thread(writer.join)
        await wait_for_lines(settings, total, timeout=60)
        assert procs[-1].stop() == 0
        lines = await read_lines(settings)
    finally:
        if procs[-1].process and procs[-1].process.poll() is None:
            procs[-1].kill()
    assert len(procs) == 5 and writer.rotations == 5
    check_duplicates(lines, total, max_duplicates=total)


async def test_broker_down_for_10_seconds(broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "outage")
    settings = collector_settings(broker, tmp_path, buffer_bytes=2 * 1024 * 1024)
    collector = collector_process(settings, tmp_path / "collector.log").start()
    total = 100_000  # about 11 MB, most of it written while the broker is away
    writer = RotatingWriter(path, total, rate=8_000, rotate_every=10**9)
    try:
        write_lines(path, 0, 0)
        writer.start()
        await wait_for_lines(settings, 5_000)
        broker.stop()  # SIGTERM: noida-db saves its data and comes back with it
        peak, down_since = 0, asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - down_since < 10:  # the outage: RSS sampled throughout
            peak = max(peak, collector.proc_status("VmRSS"))
            await asyncio.sleep(0.25)
        broker.start()
        await asyncio.to_thread(writer.join)
        lines = await wait_for_lines(settings, total, timeout=120)
        peak_hwm = collector.proc_status("VmHWM")
        assert collector.stop() == 0
    finally:
        collector.kill()
    check_duplicates(lines, total, max_duplicates=total)
    print(f"collector RSS while the broker was down: peak {peak / 1024:.1f} MiB; VmHWM {peak_hwm / 1024:.1f} MiB")
    assert peak < 150 * 1024 and peak_hwm < 160 * 1024, (peak, peak_hwm)


async def test_a_thousand_files_bounded_memory_and_no_descriptor_leak(broker: EmbeddedBroker,
                                                                      tmp_path: Path) -> None:
    root = tmp_path / "pods"
    paths = [pod_log(root, f"ns{i % 10}", f"pod{i}") for i in range(1000)]
    for i, path in enumerate(paths):
        write_lines(path, i * 20, 20)
    settings = collector_settings(broker, tmp_path, rotated_grace=0.5, rescan_interval=1.0)
    collector = collector_process(settings, tmp_path / "collector.log").start()
    try:
        lines = await wait_for_lines(settings, 20_000, timeout=90)
        tracked = collector.open_files()
        rss = collector.proc_status("VmHWM")
        for path in paths:
            shutil.rmtree(path.parent.parent)
        after = await wait_for(lambda: n if (n := collector.open_files()) < 40 else None, timeout=60,
                               what="the deleted files' descriptors closed", last_seen=collector.open_files)
        assert collector.stop() == 0
    finally:
        collector.kill()
    check_duplicates(lines, 20_000, max_duplicates=0)
    print(f"1,000 files: {tracked} descriptors open, {after} after deletion; VmHWM {rss / 1024:.1f} MiB")
    assert tracked >= 1000 and after < 40, (tracked, after)
    assert rss < 160 * 1024, rss


async def test_sigterm_while_the_broker_is_down_stops_within_the_deadline(broker: EmbeddedBroker,
                                                                          tmp_path: Path) -> None:
    path = pod_log(tmp_path / "pods", "shop", "stuck")
    write_lines(path, 0, 1000)
    settings = collector_settings(broker, tmp_path, buffer_bytes=256 * 1024, shutdown_timeout=2.0)
    collector = collector_process(settings, tmp_path / "collector.log").start()
    try:
        await wait_for_lines(settings, 1000)
        broker.stop()
        before = bytes_read(collector.pid)
        write_lines(path, 1000, 40_000)  # far more than the in-flight budget: reading is blocked
        await wait_for(lambda: bytes_read(collector.pid) >= before + 256 * 1024, timeout=60,
                       what="the collector to read its in-flight budget past the checkpoint",
                       last_seen=lambda: bytes_read(collector.pid) - before)
        started = asyncio.get_running_loop().time()
        assert collector.stop(timeout=20) == 0
        assert asyncio.get_running_loop().time() - started < 10
        broker.start()
        collector = collector_process(settings, tmp_path / "collector.log").start()  # resumes at the checkpoint
        lines = await wait_for_lines(settings, 41_000, timeout=60)
        assert collector.stop() == 0
    finally:
        collector.kill()
    check_duplicates(lines, 41_000, max_duplicates=41_000)
