"""Choosing a source's parsers (annotation, namespace, container, path) and user-defined regex/grok parsers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from agents.line_parser import LineParser
from agents.parsers.chain import ANNOTATION, SourceParsers
from agents.parsers.grok import GrokError, compile_grok
from core.errors import ConfigError
from core.models import P_LEVEL, P_SERVICE, P_TEXT, P_TIME, P_TRACE, RawChunk
from core.settings import ParseSettings, load_settings

SETTINGS = ParseSettings(
    untraced="pass",
    parsers=[
        {"name": "orders", "type": "regex",
         "patterns": [r"^(?<time>\S+) \[(?<level>\w+)\] trace=(?<traceId>\w+) (?<message>.*)$"]},
        {"name": "payments", "type": "grok", "definitions": {"PAYREF": r"PAY-\d+"},
         "patterns": ["%{TIMESTAMP_ISO8601:time} %{LOGLEVEL:level} %{PAYREF:payment} %{GREEDYDATA:message}"]},
    ],
    sources=[
        {"parsers": ["json", "klog"], "namespaces": ["kube-system"]},
        {"parsers": ["orders"], "containers": ["orders"]},
        {"parsers": ["nginx"], "paths": ["/var/log/pods/*_ingress-*/*/*.log"]},
    ],
)


@pytest.mark.parametrize(("source", "names"), [
    ({"namespace": "kube-system", "container": "orders"}, ["json", "klog"]),  # first matching entry wins
    ({"namespace": "shop", "container": "orders"}, ["orders"]),
    ({"path": "/var/log/pods/web_ingress-7f9_uid/nginx/0.log"}, ["nginx"]),
    ({"path": "/var/log/pods/web_api-1_uid/api/0.log"}, ["json"]),
    ({"namespace": "kube-system", "annotations": {ANNOTATION: "logfmt, payments"}}, ["logfmt", "payments"]),
    ({"namespace": "kube-system", "annotations": {ANNOTATION: "no-such"}}, ["json", "klog"]),
])
def test_source_selection(source: dict[str, Any], names: list[str]) -> None:
    assert SourceParsers(SETTINGS).names_for(source) == names


def parse(source: dict[str, Any], *lines: str) -> list[list[Any]]:
    raw = [[n, line, "stdout", 0, 0] for n, line in enumerate(lines)]
    out, dead = LineParser(SETTINGS).parse_chunk(RawChunk(source, "sid", 1_700_000_000_000_000_000, raw), 1)
    assert dead == []
    return sorted((e for c in out.values() for e in c.lines), key=lambda e: e[2])


def test_regex_parser_with_pcre_named_groups_maps_fields() -> None:
    (entry,) = parse({"container": "orders"}, "2023-11-14T22:13:20Z [WARN] trace=abc123 order 7 delayed")
    assert entry[P_TRACE] == "abc123" and entry[P_LEVEL] == "warn"
    assert orjson.loads(entry[P_TEXT])["message"] == "order 7 delayed"


def test_json_then_klog_reads_both_kinds_of_line_in_one_stream() -> None:
    entries = parse({"namespace": "kube-system"}, '{"traceId":"t1","level":"error","service":"dns"}',
                    "I1114 22:13:20.123456       1 controller.go:148] started")
    assert [(e[P_TRACE], e[P_LEVEL], e[P_SERVICE]) for e in entries] == [("t1", "error", "dns"), ("", "info", "")]
    assert entries[0][P_TEXT] == '{"traceId":"t1","level":"error","service":"dns"}'  # JSON text kept as written


def test_grok_parser_with_own_definitions() -> None:
    (entry,) = parse({"annotations": {ANNOTATION: "payments"}}, "2023-11-14T22:13:20Z ERROR PAY-991 declined")
    assert orjson.loads(entry[P_TEXT])["payment"] == "PAY-991" and entry[P_LEVEL] == "error"


def test_user_grok_over_the_combined_fields_reads_the_trace_id_and_the_nginx_time() -> None:
    settings = ParseSettings(parsers=[{"name": "edge", "type": "grok",
                                       "patterns": [r"%{HTTP_COMBINED_FIELDS} trace=%{NOTSPACE:trace_id}$"]}])
    line = ('10.0.0.1 - - [14/Nov/2023:22:13:20 +0100] "GET /cart HTTP/1.1" 503 12 "-" "curl/8.4.0" '
            'trace=4bf92f3577b34da6')
    out, dead = LineParser(settings).parse_chunk(
        RawChunk({"annotations": {ANNOTATION: "edge"}}, "s", 1_700_000_000_000_000_000, [[0, line, "stdout", 0, 0]]), 1)
    (entry,) = [e for c in out.values() for e in c.lines]
    assert dead == [] and entry[P_TRACE] == "4bf92f3577b34da6"
    assert entry[P_TIME] == 1_699_996_400_000_000_000  # 22:13:20 at +01:00, not a bad_time dead letter
    assert orjson.loads(entry[P_TEXT])["status"] == 503


def test_grok_fields_that_cannot_be_group_names_are_still_mapped() -> None:
    pattern = compile_grok("%{WORD:http.method} %{INT:code:int}(?: %{WORD:code})?")
    assert pattern.match("GET 200") == {"http.method": "GET", "code": 200}
    assert pattern.match("GET 200 OK") == {"http.method": "GET", "code": "OK"}  # the later capture wins


def test_canonical_names_follow_the_first_configured_alias() -> None:
    settings = ParseSettings(untraced="pass", time_fields=["@timestamp"], level_fields=["severity"])
    raw = [[0, "I1114 22:13:20.123456       1 a.go:1] hi", "stdout", 0, 0]]
    source = {"annotations": {ANNOTATION: "klog"}}
    out, _ = LineParser(settings).parse_chunk(RawChunk(source, "s", 1_700_000_000_000_000_000, raw), 1)
    (entry,) = [e for c in out.values() for e in c.lines]
    doc = orjson.loads(entry[P_TEXT])
    assert doc["@timestamp"] == "2023-11-14T22:13:20.123456Z" and doc["severity"] == "info" and "time" not in doc


def test_bad_patterns_and_names_are_refused_with_the_setting_named() -> None:
    with pytest.raises(GrokError, match=r"unknown pattern %\{NOPE\}"):
        compile_grok("%{NOPE:x}")
    with pytest.raises(ValueError, match=r"parse\.parsers 'bad'.*invalid"):
        LineParser(ParseSettings(parsers=[{"name": "bad", "type": "regex", "patterns": ["(?P<x>["]}]))
    with pytest.raises(ValueError, match="no named group"):
        LineParser(ParseSettings(parsers=[{"name": "bad", "type": "regex", "patterns": ["plain"]}]))
    with pytest.raises(ConfigError, match=r"parse.*unknown parser\(s\) \['nginxx'\]"):
        load_settings(environ={}, parse={"sources": [{"parsers": ["nginxx"]}]})
    with pytest.raises(ConfigError, match="needs at least one entry in `patterns`"):
        load_settings(environ={}, parse={"parsers": [{"name": "r", "type": "regex"}]})
