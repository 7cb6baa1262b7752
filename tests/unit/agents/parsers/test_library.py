"""Every built-in text parser reads its corpus in tests/data/parsers, and the record's fields map as JSON's.

Each corpus file holds lines shaped as the software writes them by default; every line must match
the named built-in, and selected lines are checked field by field after the parse stage has read
the record (trace id, time in UTC ns, normalized level, and the record it delivers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.line_parser import LineParser
from agents.parsers.chain import ANNOTATION, build_parsers
from agents.parsers.library import BUILTIN_GROK
from core.models import P_LEVEL, P_TEXT, P_TIME, P_TRACE, RawChunk
from core.parser_names import BUILTIN_PARSERS
from core.settings import ParseSettings

DATA = Path(__file__).parents[3] / "data" / "parsers"
COLLECTED = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
S = 1_700_000_000 * 10**9


def parse_file(parser: str, name: str, settings: ParseSettings | None = None) -> tuple[list[list[Any]], list[Any]]:
    lines = (DATA / name).read_text().splitlines()
    raw = [[n, line, "stdout", 0, 0] for n, line in enumerate(lines)]
    source = {"kind": "pod-api", "namespace": "shop", "annotations": {ANNOTATION: parser}}
    out, dead = LineParser(settings or ParseSettings(untraced="pass")).parse_chunk(
        RawChunk(source, "sid", COLLECTED, raw), 1)
    entries = sorted((e for chunk in out.values() for e in chunk.lines), key=lambda e: e[2])
    return entries, dead


@pytest.mark.parametrize("parser", sorted(BUILTIN_GROK))
def test_every_corpus_line_matches_its_builtin(parser: str) -> None:
    built = build_parsers(ParseSettings())[parser]
    for line in (DATA / f"{parser}.log").read_text().splitlines():
        assert built.match(line, COLLECTED) is not None, f"{parser} did not match {line!r}"


def test_builtin_names_in_settings_match_the_library() -> None:
    assert set(BUILTIN_PARSERS) == set(build_parsers(ParseSettings()))


def record(entry: list[Any]) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(entry[P_TEXT])
    return doc


def test_nginx_combined() -> None:
    entries, dead = parse_file("nginx", "nginx.log")
    assert dead == [] and len(entries) == 4
    first, second, third = record(entries[0]), record(entries[1]), record(entries[2])
    assert (first["client_ip"], first["method"], first["path"], first["status"], first["bytes"]) == \
        ("10.244.1.17", "GET", "/api/v1/cart", 200, 512)
    assert entries[0][P_TIME] == S and entries[0][P_LEVEL] == "info"
    assert second["user"] == "alice" and second["forwarded_for"] == "203.0.113.9" and entries[1][P_LEVEL] == "error"
    assert entries[2][P_TIME] == S + 2 * 10**9 and third["client_ip"] == "2001:db8::1"
    assert entries[2][P_LEVEL] == "warn" and record(entries[3])["request"] == "\\x16\\x03\\x01"


def test_apache_combined_and_common() -> None:
    entries, dead = parse_file("apache", "apache.log")
    assert dead == []
    assert entries[0][P_TIME] == 971211336 * 10**9 and record(entries[0])["user"] == "frank"
    assert record(entries[1])["status"] == 304 and "bytes" not in record(entries[1])


def test_syslog_5424_and_3164() -> None:
    entries, dead = parse_file("syslog", "syslog.log")
    assert dead == []
    levels = [e[P_LEVEL] for e in entries]
    assert levels == ["fatal", "info", "", "info"]  # <34>: crit; <165>: notice; no PRI; <13>: notice
    assert entries[0][P_TIME] == S + 3_000_000 and record(entries[0])["app"] == "su"
    assert entries[1][P_TIME] == S - 3600 * 10**9 + 123_456_000
    assert record(entries[2])["app"] == "kubelet" and record(entries[2])["pid"] == 1234
    assert entries[2][P_TIME] == S  # year from the collection time


def test_klog() -> None:
    entries, dead = parse_file("klog", "klog.log")
    assert dead == [] and [e[P_LEVEL] for e in entries] == ["info", "warn", "error", "fatal"]
    assert entries[0][P_TIME] == S + 123_456_000 and record(entries[0])["caller"] == "controller.go:148"


def test_klog_line_from_december_read_in_january_is_last_year() -> None:
    built = build_parsers(ParseSettings())["klog"]
    got = built.match("I1231 23:59:59.000000 1 a.go:1] x", 1_704_067_300_000_000_000)  # 2024-01-01T00:01:40Z
    assert got is not None and got["time"] == "2023-12-31T23:59:59.000000Z"


def test_log4j_python_go_java() -> None:
    entries, dead = parse_file("log4j", "log4j.log")
    assert dead == [] and [e[P_LEVEL] for e in entries] == ["info", "error", "warn", "debug"]
    assert entries[0][P_TIME] == S + 123_000_000  # time of day on the collection date
    assert record(entries[1])["logger"] == "com.example.shop.CheckoutController"
    entries, dead = parse_file("python", "python.log")
    assert dead == [] and [e[P_LEVEL] for e in entries] == ["warn", "error", "info", "error"]
    assert record(entries[1])["logger"] == "shop.payments" and entries[2][P_TIME] == S + 42_000_000
    entries, dead = parse_file("go", "go.log")
    assert dead == [] and [e[P_LEVEL] for e in entries] == ["", "", "fatal"]
    assert entries[1][P_TIME] == S + 10**9 + 123_456_000
    entries, dead = parse_file("java", "java.log")
    assert dead == [] and [e[P_LEVEL] for e in entries] == ["info", "error", "error"]
    assert record(entries[1])["service"] == "shop" and entries[1][P_TIME] == S + 10**9 + 456_000_000 - 3600 * 10**9


def test_logfmt_edge_cases() -> None:
    entries, dead = parse_file("logfmt", "logfmt.log")
    assert dead == []
    first, second, third = (record(e) for e in entries)
    assert entries[0][P_TRACE] == "4bf92f3577b34da6a3ce929d0e0e4736" and entries[0][P_TIME] == S + 123_000_000
    assert first["msg"] == "request handled" and first["duration"] == "12ms"
    assert second["msg"] == 'retrying "upstream"\tagain' and second["err"] == "" and second["cached"] is True
    assert entries[1][P_LEVEL] == "warn" and entries[1][P_TIME] == S + 10**9
    assert third["msg"] == "multi\nline" and third["user"] == "héllo wörld" and entries[2][P_LEVEL] == "error"


@pytest.mark.parametrize("text", ['a="unterminated', 'just words here', '"quoted"=1', 'a=1 "b"', ""])
def test_not_logfmt(text: str) -> None:
    from agents.parsers.logfmt import parse_logfmt
    assert parse_logfmt(text) is None


def test_unmatched_lines_are_kept_as_message_or_dead_lettered() -> None:
    lines = ["this is not nginx", '10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 200 1 "-" "x"']
    raw = [[n, line, "stderr", 0, 0] for n, line in enumerate(lines)]
    source = {"namespace": "web", "annotations": {ANNOTATION: "nginx"}}
    out, dead = LineParser(ParseSettings(untraced="pass")).parse_chunk(RawChunk(source, "s", COLLECTED, raw), 1)
    kept = sorted((e for c in out.values() for e in c.lines), key=lambda e: e[2])
    assert record(kept[0]) == {"message": "this is not nginx"} and dead == []
    out, dead = LineParser(ParseSettings(untraced="pass", unmatched="deadletter")).parse_chunk(
        RawChunk(source, "s", COLLECTED, raw), 1)
    assert [d.reason for d in dead] == ["no_parser_matched"] and dead[0].text == "this is not nginx"
    assert sum(len(c.lines) for c in out.values()) == 1


def test_untraced_text_lines_follow_the_untraced_policy_and_keep_their_text() -> None:
    raw = [[0, "WARNING:root:disk full", "stderr", 0, 0]]
    out, dead = LineParser(ParseSettings()).parse_chunk(
        RawChunk({"annotations": {ANNOTATION: "python"}}, "s", COLLECTED, raw), 1)
    assert out == {} and [(d.reason, d.text) for d in dead] == [("missing_trace_id", "WARNING:root:disk full")]
