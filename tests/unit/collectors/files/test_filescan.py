"""The file collector's C scan of CRI lines (collectors/files/_filescan.c) against its Python reference.

A TailedFile reading a CRI file with the C scan must return, read after read, exactly what it returns
on the Python path (`LOGWEAVE_PURE=1`): the same raw lines (positions, text, stream, time, flags), the
same counters of truncated, bad-time and bad-prefix lines, the same safe offset after every read and
the same lines flushed at the end, whatever the lines are (partial `P` lines, other timestamp shapes,
bad prefixes, invalid UTF-8, CRLF, lines over the limit, lines cut by a read) and with a multiline rule
joining the records. The common line must really be built in C: the scan answers for it.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.files.formats import cri_time_ns
from collectors.files.tailer import TailedFile, fingerprint
from collectors.multiline import CompiledRule, MultilineJoiner
from core.native import native_module
from core.rule_settings import MultilineRule

pytest.importorskip("collectors.files._filescan", reason="C extension not built (pure-Python install)")
scan = native_module("file_scan")
if scan is None:
    pytest.skip("LOGWEAVE_PURE=1: the file collector runs its Python path", allow_module_level=True)

FIRST = b"2025-06-10T08:25:41.000000000Z stdout F the first line, which the fingerprint hashes\n"


CORNER_STAMPS = [  # the epoch, leap seconds and days, the ends of the range, values out of range, other shapes
    b"1970-01-01T00:00:00.000000000Z", b"2025-06-10t08:25:41.000000000Z", b"2016-12-31T23:59:60.500000000Z",
    b"2024-02-29T12:00:00.000000000Z", b"2023-02-29T12:00:00.000000000Z", b"2261-12-31T23:59:60.999999999Z",
    b"1900-01-01T00:00:00.000000001Z", b"1899-12-31T23:59:59.999999999Z", b"2262-01-01T00:00:00.000000000Z",
    b"2000-02-29T00:00:00.000000000Z", b"2100-02-29T00:00:00.000000000Z", b"2025-04-31T00:00:00.000000000Z",
    b"2025-06-10T24:00:00.000000000Z", b"2025-06-10T08:60:00.000000000Z", b"2025-06-10T08:25:61.000000000Z",
    b"2025-00-10T08:25:41.000000000Z", b"2025-06-00T08:25:41.000000000Z", b"2025-06-10T08:25:41.00000000aZ",
    b"2025-06-10T08:25:41,000000000Z", b"2025-06-10T08:25:41.000000000z", b"+025-06-10T08:25:41.000000000Z",
    b"2025-06-10 08:25:41.000000000Z", b"not-a-time", b""]


def stamp(moment: dt.datetime, nanos: int) -> bytes:
    return moment.strftime("%Y-%m-%dT%H:%M:%S").encode() + b".%09dZ" % nanos


moments = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2261, 12, 31, 23, 59, 59))
digits = st.text("0123456789", min_size=1, max_size=1)
stamps = st.one_of(
    st.builds(stamp, moments, st.integers(0, 999_999_999)),  # the usual shape
    st.builds(lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ").encode(), moments),  # no fraction
    st.builds(lambda m, f: m.strftime("%Y-%m-%dT%H:%M:%S.").encode() + f.encode() + b"Z", moments,
              st.text("0123456789", min_size=1, max_size=12)),  # other fraction lengths
    # the usual shape with any digits: months, days, hours and seconds out of range, leap seconds, years
    st.builds(lambda y, mo, d, h, mi, s, f: b"%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (y, mo, d, h, mi, s, f),
              st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25), st.integers(0, 61),
              st.integers(0, 61), st.integers(0, 999_999_999)),
    # a valid day with a leap second, or one past it
    st.builds(lambda m, s, f: m.strftime("%Y-%m-%dT%H:%M:").encode() + b"%02d.%09dZ" % (s, f), moments,
              st.sampled_from([59, 60, 61]), st.integers(0, 999_999_999)),
    st.sampled_from(CORNER_STAMPS),
)
contents = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\n", " ").encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),  # invalid UTF-8 too
    st.sampled_from([b"", b"with CR\r", b"\r", b" leading space", b"caf\xc3\xa9 {\"json\": true}", b"\xed\xa0\x80",
                     b"\xc0\xaf overlong", b"x" * 80]),
    st.text(alphabet="ab \t{}:\"", min_size=50, max_size=200).map(str.encode),  # over the limit
)
lines = st.one_of(
    st.builds(lambda s, stream, tag, c: s + b" " + stream + b" " + tag + b" " + c, stamps,
              st.sampled_from([b"stdout", b"stderr", b"stdlog", b""]),
              st.sampled_from([b"F", b"F", b"F", b"P", b"X", b""]), contents),
    st.builds(lambda s, stream, tag: s + b" " + stream + b" " + tag, stamps, st.sampled_from([b"stdout", b"stderr"]),
              st.sampled_from([b"F", b"P"])),  # the prefix alone
    contents,  # no prefix at all
)


@contextmanager
def python_path() -> Iterator[None]:
    with mock.patch("collectors.files.tailer.native_module", lambda name: None):
        yield


def follow(path: Path, max_line: int, multiline: bool) -> TailedFile:
    fd = os.open(path, os.O_RDONLY)
    st_ = os.fstat(fd)
    mark = fingerprint(fd)
    assert mark is not None
    tail = TailedFile(path, fd, st_.st_dev, st_.st_ino, mark, 0, 0, "cri", {}, max_line)
    if multiline:
        tail.joiner = MultilineJoiner(CompiledRule(MultilineRule(detectors=["java", "python"])))
    return tail


def read_all(path: Path, budgets: list[int], max_line: int, multiline: bool) -> list[Any]:
    """Everything the tailer says, read after read: lines, safe offsets, counters, the final flush."""
    tail = follow(path, max_line, multiline)
    said: list[Any] = []
    try:
        for budget in budgets + [1 << 20]:
            said.append((tail.read_lines(budget), tail.safe_offset, tail.read_offset))
        said.append((tail.flush_pending(), tail.lines_truncated, tail.lines_bad_time, tail.lines_bad_prefix))
    finally:
        tail.close()
    return said


@settings(max_examples=300, deadline=None)
@given(st.lists(lines, max_size=30), st.booleans(), st.lists(st.integers(1, 400), max_size=6),
       st.integers(16, 64), st.booleans())
def test_reads_give_what_the_python_path_gives(body: list[bytes], ends_whole: bool, budgets: list[int],
                                               max_line: int, multiline: bool) -> None:
    data = FIRST + b"\n".join(body) + (b"\n" if ends_whole and body else b"")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "0.log"
        path.write_bytes(data)
        got = read_all(path, budgets, max_line, multiline)
        with python_path():
            expected = read_all(path, budgets, max_line, multiline)
    assert got == expected


@pytest.mark.parametrize("multiline", [False, True])
def test_corner_cases_give_what_the_python_path_gives(tmp_path: Path, multiline: bool) -> None:
    """Every corner timestamp, stream and tag, with contents at and over the limit, read whole and in pieces."""
    body = []
    for mark in CORNER_STAMPS:  # full lines (most common in C), then a partial line and its end
        body += [mark + b" " + stream + b" F " + content for stream in (b"stdout", b"stderr", b"stdlog")
                 for content in (b"", b"x" * 32, b"x" * 33, b"\xff", b"cr\r", b"Caused by: x", b"\tat a.b(C.java:1)")]
        body += [mark + b" stdout P half ", mark + b" stderr F between", mark + b" stdout F end"]
    path = tmp_path / "0.log"
    path.write_bytes(FIRST + b"\n".join(body) + b"\n")
    for budgets in ([], [100, 7, 3000, 1, 50]):
        got = read_all(path, budgets, 32, multiline)
        with python_path():
            assert got == read_all(path, budgets, 32, multiline)


@settings(max_examples=500, deadline=None)
@given(moments, st.integers(0, 999_999_999), st.sampled_from([b"stdout", b"stderr"]), st.text(max_size=30))
def test_the_common_line_is_built_in_c_with_the_reference_time(moment: dt.datetime, nanos: int, stream: bytes,
                                                               text: str) -> None:
    mark = stamp(moment, nanos)
    content = text.replace("\n", " ").replace("\r", " ").encode()
    buffer = b"junk\n" + mark + b" " + stream + b" F " + content + b"\nrest"
    out: list[Any] = []
    stop = len(buffer) - len(b"rest")
    expected_ns = cri_time_ns(mark)
    assert scan is not None
    if expected_ns == 0:  # the epoch itself: the reference reads 0 as "did not parse"
        assert mark == b"1970-01-01T00:00:00.000000000Z"
        assert scan.cri_lines(buffer, 5, stop, 1000, 1 << 20, "stdout", "stderr", out) == 5 and out == []
        return
    assert scan.cri_lines(buffer, 5, stop, 1000, 1 << 20, "stdout", "stderr", out) == stop
    assert out == [[1005, content.decode(), stream.decode(), expected_ns, 0]]


def test_the_scan_stops_at_the_first_line_it_leaves_to_the_reference() -> None:
    common = b"2025-06-10T08:25:41.000000001Z stdout F {\"a\": 1}\n"
    for other in (b"2025-06-10T08:25:41.000000002Z stdout P half\n", b"2025-06-10T08:25:41Z stdout F short\n",
                  b"2025-06-10T08:25:41.000000002Z stdout F \xff\n", b"2025-06-10T08:25:41.000000002Z stdout F cr\r\n",
                  b"2025-06-10T08:25:41.000000002Z stdout F " + b"x" * 65 + b"\n", b"no prefix\n",
                  b"2025-02-29T08:25:41.000000002Z stdout F not a leap year\n"):
        buffer = common + other + common
        out: list[Any] = []
        assert scan is not None
        assert scan.cri_lines(buffer, 0, len(buffer), 0, 64, "stdout", "stderr", out) == len(common)
        assert [entry[0] for entry in out] == [0]


def test_bounds_are_checked() -> None:
    assert scan is not None
    with pytest.raises(ValueError, match="within the buffer"):
        scan.cri_lines(b"abc\n", 0, 5, 0, 10, "stdout", "stderr", [])
    with pytest.raises(ValueError, match="within the buffer"):
        scan.cri_lines(b"abc\n", -1, 4, 0, 10, "stdout", "stderr", [])
