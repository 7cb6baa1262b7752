"""A multiline record open at a rename rotation takes the new file's leading continuation lines, in real
files; the new file's checkpoint passes those lines only in the save that holds the record's
acknowledgement, and a collector restarted before it reads the same record again (same stream id and
position) while the new file's own lines are not read twice.

The publisher is the stand-in of test_collector.py (acks settled by the test): under test are the
collector's reading, joining and checkpoints, not Kafka.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from kafka_io.publisher import ChunkAck
from tests.unit.collectors.files.test_multiline_files import JAVA, TIME, collector_for, cri, lines_of, pump

WHOLE = "\n".join(j.decode() for j in JAVA)


def write(path: Path, *texts: bytes) -> int:
    data = b"".join(cri(b"stdout", t) for t in texts)
    with open(path, "ab") as handle:
        handle.write(data)
    return len(data)


async def test_the_new_files_frames_join_the_old_files_record(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path, flush_timeout=600)
    head = write(path, b"INFO started", *JAVA[:2])
    await pump(collector)
    assert [line[1] for line in lines_of(publisher)] == ["INFO started"]
    (old,) = collector.files.values()
    os.rename(path, path.with_name("0.log.20261203-061500"))
    lead = write(path, *JAVA[2:])
    write(path, b"INFO next", b"INFO open")
    await pump(collector)  # the scan sees the rotation and the new file; the old one is read to its end
    await collector.pump()
    (new,) = [t for t in collector.files.values() if t is not old]
    got = [(chunk.stream_id, line[0], line[1]) for chunk in publisher.chunks for line in chunk.lines]
    first = len(cri(b"stdout", b"INFO started"))
    assert got == [(old.stream_id, 0, "INFO started"), (old.stream_id, first, WHOLE),
                   (new.stream_id, lead, "INFO next")]
    assert head == first + len(cri(b"stdout", JAVA[0])) + len(cri(b"stdout", JAVA[1]))
    assert collector.checkpoints[new.stream_id]["lead"] == lead
    publisher.acks[0].set_result(ChunkAck(0, 1))  # "INFO started"
    publisher.acks[-1].set_result(ChunkAck(0, 3))  # the new file's own line, acknowledged before the record
    collector.settle_acks()
    assert collector.checkpoints[old.stream_id]["offset"] == first, "held at the record's start"
    publisher.acks[1].set_result(ChunkAck(0, 2))
    collector.settle_acks()
    assert collector.checkpoints[old.stream_id]["offset"] == head
    assert int(str(collector.checkpoints[new.stream_id]["offset"])) > lead
    collector.close()


async def test_a_restart_before_the_acknowledgement_reads_the_same_record(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path, flush_timeout=600)
    write(path, b"INFO started", *JAVA[:2])
    await pump(collector)
    publisher.acks[0].set_result(ChunkAck(0, 1))
    os.rename(path, path.with_name("0.log.20261203-061500"))
    lead = write(path, *JAVA[2:])
    write(path, b"INFO next", b"INFO open")
    await pump(collector)
    await collector.pump()
    publisher.acks[-1].set_result(ChunkAck(0, 3))  # "INFO next" acknowledged, the joined record not
    await collector.save_checkpoint()
    first_send = [(chunk.stream_id, line[0], line[1]) for chunk in publisher.chunks for line in chunk.lines]
    collector.close()  # killed here

    _path, restarted, collector2 = collector_for(tmp_path, flush_timeout=600)
    await pump(collector2)
    await collector2.pump()
    again = [(chunk.stream_id, line[0], line[1]) for chunk in restarted.chunks for line in chunk.lines]
    assert again == [first_send[1]], "the record again, whole, under the same identity; nothing else re-sent"
    (new,) = [t for t in collector2.files.values() if t.rotated_at is None]
    assert new.read_offset > lead and new.lead_end == lead
    collector2.close()


async def test_the_records_acknowledgement_moves_the_new_files_checkpoint_past_its_frames(tmp_path: Path) -> None:
    path, publisher, collector = collector_for(tmp_path, flush_timeout=600)
    write(path, b"INFO started", *JAVA[:2])
    await pump(collector)
    os.rename(path, path.with_name("0.log.20261203-061500"))
    lead = write(path, *JAVA[2:])
    write(path, b"INFO open")  # the new file's first own record stays open: nothing of its own is sent
    await pump(collector)
    await collector.pump()
    (new,) = [t for t in collector.files.values() if t.rotated_at is None]
    assert collector.checkpoints[new.stream_id]["offset"] == 0
    for ack in publisher.acks:
        ack.set_result(ChunkAck(0, 1))
    collector.settle_acks()  # the joined record acknowledged: in the same save, the frames are behind
    assert collector.checkpoints[new.stream_id]["offset"] == lead
    await collector.save_checkpoint()
    collector.close()

    with open(path, "ab") as handle:
        handle.write(cri(b"stdout", b"INFO closing"))
    _path, restarted, collector2 = collector_for(tmp_path, flush_timeout=600)
    await pump(collector2)
    assert [(line[0], line[1]) for line in lines_of(restarted)] == [(lead, "INFO open")], \
        "the old file is done; the new one resumes after the frames it handed over"
    collector2.close()


async def test_a_truncation_with_a_record_open_asks_for_scans_until_the_copy_is_found(tmp_path: Path) -> None:
    """copytruncate: the scan the copy's creation brought left it undecided (its original still held the
    same content); the truncation is seen by a read, and no entry event follows it. The collector asks
    for a scan at once, and then while the truncated file waits for its copy (at most rotated_grace)."""
    path, publisher, collector = collector_for(tmp_path, flush_timeout=600)
    first = write(path, b"INFO started")
    write(path, *JAVA[:2])
    await pump(collector)
    (original,) = collector.files.values()
    assert not collector.wants_rescan(time.monotonic())
    shutil.copyfile(path, path.with_name("0.log.1"))
    await pump(collector)  # the scan of the copy's creation: not truncated yet, so not followed yet
    assert list(collector.files.values()) == [original]
    os.truncate(path, 0)
    write(path, *JAVA[2:], b"INFO next")
    await collector.pump()  # the truncation: a record is open, the new generation waits for the copy
    assert original.awaiting_copy is not None and collector.wants_rescan(time.monotonic())
    await pump(collector)  # the rescan asked for finds the copy, and this pass reads it
    assert len(collector.files) == 2 and original.awaiting_copy is None
    assert not collector.wants_rescan(time.monotonic())
    assert [(chunk.stream_id, line[0], line[1]) for chunk in publisher.chunks for line in chunk.lines][:2] == [
        (original.previous_stream_id, 0, "INFO started"), (original.previous_stream_id, first, WHOLE)]
    collector.close()


async def test_a_truncated_file_waits_for_a_copy_no_longer_than_the_grace(tmp_path: Path) -> None:
    path, _publisher, collector = collector_for(tmp_path, flush_timeout=600)
    write(path, b"INFO started", *JAVA[:2])
    await pump(collector)
    os.truncate(path, 0)  # truncated with a record open, and no copy made
    write(path, *JAVA[2:])
    await collector.pump()
    await pump(collector)
    now = time.monotonic()
    assert collector.wants_rescan(now), "the copy may still come within rotated_grace"
    assert not collector.wants_rescan(now + collector.settings.rotated_grace)
    collector.close()


async def test_a_second_truncation_waits_for_its_own_copy_not_the_first_ones(tmp_path: Path) -> None:
    """copytruncate twice within `rotated_grace`: when the second truncation is seen, the first copy is still
    followed (read to its end, its record handed over). The new generation must wait for the copy of the
    generation it truncated, not take the first copy for the file it replaced and read its leading frames
    as a record of their own (the tail of a stack trace arriving alone)."""
    path, publisher, collector = collector_for(tmp_path, flush_timeout=600)
    write(path, b"INFO started", *JAVA[:2])
    await pump(collector)
    for rotation in (1, 2):
        shutil.copyfile(path, path.with_name(f"0.log.{rotation}"))
        await pump(collector)  # the copy's creation: undecided, its original still holds the same content
        os.truncate(path, 0)
        # the trace's frames (written a second later each time: a generation's first line is its own),
        # then lines of this generation (more each time: no generation is as long as the one before),
        # then another trace opens
        later = TIME.replace(b":41.", b":%02d." % (41 + rotation))
        own = [b"INFO next %d" % n for n in range(rotation)]
        with open(path, "ab") as handle:
            handle.write(b"".join(later + b" stdout F " + text + b"\n" for text in [*JAVA[2:], *own, *JAVA[:2]]))
        await collector.pump()  # the truncation, with a record open
        await pump(collector)  # the rescan finds the copy; the frames join its record
        await collector.pump()
    texts = [line[1] for line in lines_of(publisher)]
    assert texts.count(WHOLE) == 2, texts
    assert not [text for text in texts if text.startswith("\tat ")], "a trace's frames were sent without its head"
    collector.close()
