"""Tailing real files: positions, CRI partial merging, docker split lines, truncation, copytruncate."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collectors.files.formats import detect_format
from collectors.files.tailer import TailedFile, fingerprint
from core.models import FLAG_TRUNCATED, raw_line_bytes


def open_tail(path: Path, max_line: int = 1 << 20, fmt: str | None = None) -> TailedFile:
    fd = os.open(path, os.O_RDONLY)
    st = os.fstat(fd)
    mark = fingerprint(fd)
    assert mark is not None
    return TailedFile(path, fd, st.st_dev, st.st_ino, mark, 0, 0, fmt, {}, max_line)  # type: ignore[arg-type]


def test_plain_lines_positions_and_incomplete_tail(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\nsecond\nthi")
    tail = open_tail(log)
    lines = tail.read_lines()
    assert [(e[0], e[1]) for e in lines] == [(0, "first"), (6, "second")]
    assert tail.safe_offset == 13  # the incomplete third line starts there
    with open(log, "ab") as handle:
        handle.write(b"rd\n")
    assert [(e[0], e[1]) for e in tail.read_lines()] == [(13, "third")]
    assert tail.safe_offset == 19


def test_cri_partial_lines_merge_per_stream(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(
        b"2025-06-10T08:25:41.000000001Z stdout P hello \n"
        b"2025-06-10T08:25:41.000000002Z stderr F an error\n"
        b"2025-06-10T08:25:41.000000003Z stdout P big \n"
        b"2025-06-10T08:25:41.000000004Z stdout F world\n"
    )
    tail = open_tail(log)
    lines = tail.read_lines()
    assert [(e[1], e[2]) for e in lines] == [("an error", "stderr"), ("hello big world", "stdout")]
    assert lines[0][0] == 47 and lines[1][0] == 141 and lines[1][3] == 1749543941_000000001  # last fragment
    assert tail.safe_offset == log.stat().st_size


def test_pending_partial_holds_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"2025-06-10T08:25:41Z stdout F done\n2025-06-10T08:25:42Z stdout P half\n")
    tail = open_tail(log)
    assert [e[1] for e in tail.read_lines()] == ["done"]
    assert tail.safe_offset == 35  # start of the pending partial line


def test_docker_split_lines(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b'{"log":"part one ","stream":"stdout","time":"2025-06-10T08:25:41Z"}\n'
                    b'{"log":"part two\\n","stream":"stdout","time":"2025-06-10T08:25:41Z"}\n')
    tail = open_tail(log)
    assert detect_format(log.read_bytes().splitlines()[0]) == "docker"
    (line,) = tail.read_lines()
    assert line[1] == "part one part two" and line[0] == 68  # offset of the last fragment


def test_huge_line_truncated_without_holding_it(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * (5 * 1024 * 1024) + b"\nafter\n")
    tail = open_tail(log, max_line=1024)
    lines = []
    while tail.read_offset < log.stat().st_size:
        lines.extend(tail.read_lines(budget=256 * 1024))
    assert len(lines) == 2
    assert len(lines[0][1]) == 1024 and lines[0][4] & FLAG_TRUNCATED
    assert lines[1][1] == "after" and lines[1][0] == 5 * 1024 * 1024 + 1
    assert tail.lines_truncated == 1


def test_invalid_utf8_kept_as_bytes(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    log.write_bytes(b"ok\n\xff\xfe raw\n")
    tail = open_tail(log)
    lines = tail.read_lines()
    assert raw_line_bytes(lines[1]) == b"\xff\xfe raw"


# the second: copytruncate, then the app writes its start-up banner again and more than was read before
# the collector looks: the first line is the same, the bytes before the read offset are not
@pytest.mark.parametrize(("before", "after"), [
    (b"one\ntwo\n", b"three\n"),
    (b"app starting\nrequest 1 served\n", b"app starting\nrequest 7 failed after a retry\n"),
], ids=["shorter", "same-first-line-past-the-offset"])
def test_copytruncate_starts_a_new_generation(tmp_path: Path, before: bytes, after: bytes) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(before)
    tail = open_tail(log)
    assert [e[1] for e in tail.read_lines()] == before.decode().splitlines()
    first_stream = tail.stream_id
    os.truncate(log, 0)
    with open(log, "ab") as handle:
        handle.write(after)
    assert tail.check_truncation()
    assert tail.stream_id != first_stream
    lines = tail.read_lines()
    assert [e[1] for e in lines] == after.decode().splitlines() and lines[0][0] == 0


def test_unfinished_partial_is_flushed_after_the_last_line(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"2025-06-10T08:25:41Z stdout F done\n2025-06-10T08:25:42Z stdout P never finished\n")
    tail = open_tail(log)
    (done,) = tail.read_lines()
    (flushed,) = tail.flush_pending()
    assert flushed[1] == "never finished" and flushed[0] > done[0]
    assert tail.safe_offset == log.stat().st_size and tail.flush_pending() == []


def test_the_cri_fast_path_gives_what_the_general_path_gives(tmp_path: Path) -> None:
    """read_lines builds common CRI lines itself; every kind of line must come out as `_emit` makes it."""
    lines = [b"2025-06-10T08:25:41.000000001Z stdout F plain full line",
             b"2025-06-10T08:25:41.5Z stderr F short fraction",
             b"2025-06-10T08:25:41Z stdout F no fraction",
             b"2025-06-10T08:25:41.000000002Z stdout P first half ",
             b"2025-06-10T08:25:41.000000003Z stderr F other stream while stdout is partial",
             b"2025-06-10T08:25:41.000000004Z stdout F second half",
             b"2025-06-10T08:25:41.000000005Z stdout F crlf ending\r",
             b"2025-06-10T08:25:41.000000006Z stdout F \xff\xfe not utf-8",
             b"not-a-time stdout F bad timestamp",
             b"2025-06-10T08:25:41.000000007Z stdlog F unknown stream",
             b"2025-06-10T08:25:41.000000008Z stdout X unknown tag",
             b"2025-06-10T08:25:41.000000009Z stdout F",
             b"2025-06-10T08:25:41.000000010Z stdout F " + b"x" * 40,
             b"no prefix at all",
             b"",
             b"2025-06-10T08:25:41.000000011Z stdout F caf\xc3\xa9 {\"json\": true}"]
    fast = open_tail(_write(tmp_path / "fast.log", lines), max_line=32, fmt="cri")
    general = open_tail(_write(tmp_path / "general.log", lines), max_line=32, fmt="cri")
    expected: list[object] = []
    offset = 0
    for line in lines:
        general._emit(line, offset, expected)  # type: ignore[arg-type]
        offset += len(line) + 1
    got = fast.read_lines()
    assert got == expected
    assert len(got) >= 12 and any(entry[4] for entry in got)  # both paths were really taken
    assert (fast.lines_truncated, fast.lines_bad_time, fast.lines_bad_prefix) == (
        general.lines_truncated, general.lines_bad_time, general.lines_bad_prefix)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_an_appended_line_is_checked_and_read_with_one_pread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    tail = open_tail(log)
    tail.read_lines()
    calls: list[int] = []
    real_pread = os.pread

    def counting(fd: int, size: int, offset: int) -> bytes:
        calls.append(offset)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting)
    for n in range(3):
        with open(log, "ab") as handle:
            handle.write(b"line %d\n" % n)
        assert not tail.check_truncation()
        assert [e[1] for e in tail.read_lines()] == [f"line {n}"]
    assert len(calls) == 3  # one per look: the check re-reads the last bytes and takes the new line
    assert tail.read_lines() == [] and not tail.check_truncation()


def test_lines_written_between_the_check_and_the_read_are_read_next(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"first\n")
    tail = open_tail(log)
    tail.read_lines()
    with open(log, "ab") as handle:
        handle.write(b"second\n")
    assert not tail.check_truncation()
    with open(log, "ab") as handle:
        handle.write(b"third\n")
    assert [e[1] for e in tail.read_lines()] == ["second"]  # what the check saw
    assert not tail.check_truncation()
    assert [e[1] for e in tail.read_lines()] == ["third"]
    assert tail.safe_offset == log.stat().st_size


def test_a_rewind_checks_the_first_line_again(tmp_path: Path) -> None:
    """After a rewind the kept bytes are not those before the new offset: the check falls back to the
    first line, and the lines after the offset are read again."""
    log = tmp_path / "app.log"
    log.write_bytes(b"first\nsecond\n")
    tail = open_tail(log)
    tail.read_lines()
    tail.rewind(6)
    assert not tail.check_truncation()
    assert [e[1] for e in tail.read_lines()] == ["second"]
