"""Syslog parsing: RFC 5424 with structured data and BOM, RFC 3164 without a year, JSON messages."""

from __future__ import annotations

import orjson
import pytest

from collectors.intake.syslog_frames import FrameSplitter
from collectors.intake.syslog_parse import NotSyslog, parse_syslog

NOW = 1_764_669_600_000_000_000  # 2025-12-02T10:00:00Z


def doc(data: bytes) -> dict[str, object]:
    text, _ = parse_syslog(data, NOW)
    parsed: dict[str, object] = orjson.loads(text)
    return parsed


def test_rfc5424_with_structured_data_and_bom() -> None:
    data = ('<165>1 2003-10-11T22:14:15.003Z host.example evntslog 42 ID47 [ex@32473 iut="3" '
            'src="a \\"q\\" \\]"][x@1 k="v"] \ufeffAn application event').encode()
    text, time_ns = parse_syslog(data, NOW)
    assert time_ns == 1_065_910_455_003_000_000
    assert orjson.loads(text) == {
        "msg": "An application event", "time": "2003-10-11T22:14:15.003000000Z", "level": "notice",
        "syslog": {"facility": 20, "severity": "notice", "host": "host.example", "app": "evntslog", "procid": "42",
                   "msgid": "ID47", "sd": {"ex@32473": {"iut": "3", "src": 'a "q" ]'}, "x@1": {"k": "v"}}}}
    assert doc(b"<14>1 - - - - - -")["syslog"] == {"facility": 1, "severity": "info"}


def test_rfc3164_assumes_this_year_or_the_last() -> None:
    parsed = doc(b"<34>Dec  1 22:14:15 gateway su[812]: 'su root' failed")
    assert parsed["time"] == "2025-12-01T22:14:15.000000000Z" and parsed["msg"] == "'su root' failed"
    assert parsed["syslog"] == {"facility": 4, "severity": "crit", "host": "gateway", "app": "su", "procid": "812"}
    assert doc(b"<34>Dec 31 23:00:00 gw app: late")["time"] == "2024-12-31T23:00:00.000000000Z"


def test_json_messages_are_the_line_and_keep_their_own_fields() -> None:
    parsed = doc(b'<11>1 2025-12-02T09:00:00Z h app - - - {"traceId": "t", "time": "x", "n": 1}')
    assert parsed["traceId"] == "t" and parsed["time"] == "x" and parsed["level"] == "error" and parsed["n"] == 1
    assert doc(b"<11>1 - - - - - - {not json")["msg"] == "{not json"


def test_messages_without_pri_are_not_syslog() -> None:
    for bad in (b"hello", b"<999>1 - - - - - - x", b""):
        with pytest.raises(NotSyslog):
            parse_syslog(bad, NOW)


def test_frames_octet_counted_and_lf_terminated() -> None:
    splitter = FrameSplitter(100)
    frames = splitter.feed(b"11 <13>1 - - a\n<13>lf framed\n5 <13>x<13>tail")
    assert [*frames, splitter.close()] == [b"<13>1 - - a", b"<13>lf framed\n", b"<13>x", b"<13>tail"]
    with pytest.raises(ValueError, match="max_line_bytes"):
        FrameSplitter(100).feed(b"999 <13>")
