"""LiveRules: a valid version replaces parser and router between chunks; a bad one is refused and the old stays."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import orjson
import pytest

from agents.live_rules import STARTUP, LiveRules
from commands.rules import validated
from core.errors import ConfigError
from core.metrics import LOG_METRICS, RULES_LATE
from core.models import P_TRACE, ParsedChunk, RawChunk
from core.native import native_module
from core.rules import RulesDocument, decode_rules, load_rules_file
from core.settings import Settings

NGINX = '10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 500 1 "-" "x"'
V1 = {"version": "v1", "parse": {"sources": [{"namespaces": ["web"], "parsers": ["nginx"]}]},
      "routing": {"rules": [{"name": "errors", "sinks": ["file"], "level_at_least": "error"}]}}


def record(doc: dict[str, object]) -> bytes:
    return RulesDocument(**doc).encode()


def parse_one(rules: LiveRules, text: str, collected_ns: int | None = None) -> list[list[object]]:
    out, _ = rules.parser.parse_chunk(RawChunk({"namespace": "web"}, "s", collected_ns or time.time_ns(),
                                               [[0, text, "stdout", 0, 0]]), 1)
    return [e for c in out.values() for e in c.lines]


def test_a_valid_version_switches_parser_and_router_and_tells_listeners() -> None:
    rules = LiveRules(Settings(parse={"untraced": "pass"}))
    switched: list[str] = []
    rules.on_switch(lambda live: switched.append(live.version))
    assert rules.version == STARTUP and parse_one(rules, NGINX) == []  # JSON only: dead-lettered
    assert rules.apply(record(V1))
    assert rules.version == "v1" and switched == ["v1"]
    (entry,) = parse_one(rules, NGINX)
    assert entry[P_TRACE] == "" and rules.router.line_rules[0].name == "errors"
    assert rules.apply(record(V1)) and switched == ["v1"]  # the same version again: nothing to do


@pytest.mark.parametrize("bad", [
    b"not json",
    orjson.dumps({"v": 99, "version": "v9", "rules": {}}),
    orjson.dumps({"v": 1, "version": "v2", "rules": {"parse": {"sources": [{"parsers": ["nope"]}]}}}),
    orjson.dumps({"v": 1, "version": "v3", "rules": {"parse": {"parsers": [
        {"name": "r", "type": "regex", "patterns": ["(?P<x>"]}]}}}),
    orjson.dumps({"v": 1, "version": "v4", "rules": {"routing": {"rules": [
        {"name": "x", "sinks": ["file"], "transforms": {"drop_below": "loud"}}]}}}),
])
def test_a_bad_version_is_refused_and_the_running_one_stays(bad: bytes) -> None:
    rules = LiveRules(Settings())
    assert rules.apply(record(V1))
    parser, router = rules.parser, rules.router
    assert not rules.apply(bad)
    assert (rules.version, rules.parser, rules.router) == ("v1", parser, router)
    assert rules.refused and rules.refused[-1][1]


def test_version_names_and_file_validation(tmp_path: Path) -> None:
    unnamed = RulesDocument(**{**V1, "version": ""})
    assert len(unnamed.name()) == 12 and unnamed.name() == RulesDocument(**{**V1, "version": ""}).name()
    assert decode_rules(unnamed.encode()).name() == unnamed.name()
    path = tmp_path / "rules.yaml"
    path.write_text("parse:\n  parsers:\n    - {name: r, type: grok, patterns: ['%{NOPE:x}']}\n")
    with pytest.raises(ConfigError, match=r"rules file .*rules.yaml: parse.parsers 'r': .*unknown pattern"):
        validated(Settings(), path)
    path.write_text("routing:\n  rules:\n    - {name: x, sinks: [nowhere]}\n")
    with pytest.raises(ConfigError, match=r"routing.rules.0.sinks: unknown sink"):
        load_rules_file(path)


def test_a_trace_matched_under_a_dropped_rule_is_still_delivered_by_it() -> None:
    rules = LiveRules(Settings())
    assert rules.apply(record({"version": "a", "routing": {"rules": [
        {"name": "slow-traces", "sinks": ["file"], "mode": "trace", "level_at_least": "warn"}]}}))
    assert rules.apply(record({"version": "b", "routing": {"rules": [
        {"name": "errors", "sinks": ["file"], "mode": "trace", "level_at_least": "error"}]}}))
    line = [0, "s", 1, 1, "t", "warn", "svc", "{}", "stdout"]
    assert [sink for sink, _ in rules.router.trace_deliveries(["slow-traces"], line, [{}], False)] == ["file"]
    assert rules.router.trace_rule_hits(line, [{}]) == []  # new lines match only the running version


def test_an_unknown_parser_name_is_named_in_the_refusal(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("parse:\n  sources:\n    - {parsers: [nginxx]}\n")
    with pytest.raises(ConfigError, match=r"rules file .*: parse.*unknown parser\(s\) \['nginxx'\]"):
        validated(Settings(), path)


T0 = time.time_ns() // 10**9 * 10**9  # collection times used as effective points: about now


def tagged(version: str) -> RulesDocument:
    return RulesDocument(version=version, parse={"sources": [{"namespaces": ["web"], "parsers": ["nginx"]}]},
                         routing={"rules": [{"name": version, "sinks": ["file"]}]})


def test_a_chunk_is_parsed_and_routed_by_the_version_in_effect_when_it_was_collected() -> None:
    rules = LiveRules(Settings(parse={"untraced": "pass"}))
    assert rules.apply(tagged("v1").encode(T0), now_ns=T0 - 10**9)
    assert rules.apply(tagged("v2").encode(T0 + 60 * 10**9), now_ns=T0 - 10**9)  # pending: a minute later
    assert parse_one(rules, NGINX, T0 - 1) == []  # before v1: the start-up rules (JSON only), dead-lettered
    assert len(parse_one(rules, NGINX, T0)) == 1  # from its point on: v1's nginx parser
    assert [rules.router_at(p).line_rules[0].name for p in (T0, T0 + 60 * 10**9 - 1, T0 + 60 * 10**9)] == \
        ["v1", "v1", "v2"]
    assert rules.router_at(T0 - 1).line_rules == []
    out, _ = rules.parser.parse_chunk(RawChunk({"namespace": "web"}, "s", T0 + 5, [[0, NGINX, "stdout", 0, 0]]), 1)
    (chunk,) = out.values()
    assert ParsedChunk.decode(chunk.encode()).collected_ns == T0 + 5  # the group stage routes by the same time


def test_a_later_publish_with_an_earlier_point_supersedes_the_pending_version() -> None:
    rules = LiveRules(Settings())
    assert rules.apply(tagged("v1").encode(T0 + 60 * 10**9), now_ns=T0)
    assert rules.apply(tagged("v2").encode(T0 + 10 * 10**9), now_ns=T0)
    assert [v.name for v in rules.versions] == ["startup", "v2"]  # v1 never takes effect
    assert rules.router_at(T0 + 120 * 10**9).line_rules[0].name == "v2"


def test_a_version_read_after_chunks_past_its_point_is_counted_late_and_applies_from_then() -> None:
    rules = LiveRules(Settings(parse={"untraced": "pass"}))
    parse_one(rules, NGINX, T0 + 10)
    before = RULES_LATE._value.get()
    assert rules.apply(tagged("v1").encode(T0), now_ns=T0)
    assert RULES_LATE._value.get() == before + 1 and rules.late == ["v1"]
    assert rules.router_at(T0 + 11).line_rules[0].name == "v1"


def test_an_unstamped_record_takes_effect_from_when_it_is_read() -> None:
    rules = LiveRules(Settings())
    assert rules.apply(tagged("v1").encode(), now_ns=T0)
    assert rules.router_at(T0 - 1).line_rules == [] and rules.router_at(T0).line_rules[0].name == "v1"
    assert rules.version == "v1"  # in effect at the newest point handled (T0, past the real clock)


@pytest.mark.parametrize("point", [-5, "soon", 1.5])
def test_a_bad_effective_point_is_refused(point: object) -> None:
    rules = LiveRules(Settings())
    bad = orjson.dumps({**orjson.loads(tagged("v1").encode()), "effective_from_ns": point})
    assert not rules.apply(bad) and "effective_from_ns" in rules.refused[-1][1]


def test_a_collector_clock_far_ahead_does_not_make_later_versions_late() -> None:
    rules = LiveRules(Settings(parse={"untraced": "pass"}))
    parse_one(rules, NGINX, time.time_ns() + 86_400 * 10**9)  # a collector a day ahead
    assert rules.apply(tagged("v1").encode(time.time_ns() + 3600 * 10**9))
    assert rules.late == []


METRICS = {"log_metrics": {"rules": [{"name": "logweave_log_errors_total", "type": "counter",
                                      "match": {"level_at_least": "error"}, "labels": ["service"]}]}}


def test_metric_rules_switch_with_the_version_and_keep_counting_when_unchanged() -> None:
    rules = LiveRules(Settings())
    assert rules.metrics_at(None) is None  # no rules: the group stage does nothing for them
    start = time.time_ns()
    assert rules.apply(record({**V1, **METRICS, "version": "m1"}), now_ns=start)
    first = rules.metrics_at(None)
    assert first is not None and LOG_METRICS.stores["logweave_log_errors_total"] is first.rules[0].store
    assert rules.metrics_at(start - 1) is None  # a chunk collected before the switch: the old version's rules
    assert rules.apply(record({**V1, **METRICS, "version": "m2"}))
    second = rules.metrics_at(None)
    assert second is not None and second.rules[0].store is first.rules[0].store  # the same metric goes on
    assert rules.apply(record({**V1, "version": "m3"}))
    assert rules.metrics_at(None) is None
    assert "logweave_log_errors_total" in LOG_METRICS.stores  # versions m1, m2 are still held for backlogs
    for n in range(8):
        assert rules.apply(record({**V1, "version": f"later{n}"}))
    assert "logweave_log_errors_total" not in LOG_METRICS.stores  # no version held has it: off /metrics


def test_a_bad_metric_rule_is_refused_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    rules = LiveRules(Settings())
    bad = {**V1, "version": "bad", "log_metrics": {"rules": [{"name": "errors_total", "type": "counter"}]}}
    assert not rules.apply(orjson.dumps({"v": 1, "version": "bad", "rules": bad}))
    version, why = rules.refused[-1]
    assert version == "bad" and "log_metrics.rules.0.name" in why and "logweave_log_" in why and "\n" not in why
    with pytest.raises(ConfigError, match=r"log_metrics.rules.0.buckets: .*strictly increasing"):
        decode_rules(orjson.dumps({"v": 1, "rules": {"log_metrics": {"rules": [
            {"name": "logweave_log_d", "type": "histogram", "field": "d", "buckets": [2, 1]}]}}}))


def test_a_document_without_metric_rules_keeps_its_version_name() -> None:
    """Documents written before metric rules existed hash to the same name."""
    plain = RulesDocument(**{k: v for k, v in V1.items() if k != "version"})
    content = orjson.dumps(plain.model_dump(mode="json", exclude={"version", "log_metrics"}),
                           option=orjson.OPT_SORT_KEYS)
    assert plain.name() == hashlib.sha256(content).hexdigest()[:12]
    assert RulesDocument(**{**plain.model_dump(), **METRICS}).name() != plain.name()


def test_records_read_from_their_bytes_take_the_newest_version_only_once_it_is_in_effect() -> None:
    """The parse stage reads a raw record's bytes with the newest version's parser; a record collected
    before that version's point is declined, and the decoded path parses it by its own version."""
    if native_module("line_scan") is None:
        pytest.skip("the C scan is off in this process (LOGWEAVE_PURE=1): every record is decoded")
    rules = LiveRules(Settings(parse={"untraced": "pass"}))
    assert rules.apply(tagged("v1").encode(T0), now_ns=T0 - 10**9)
    api, web = {"namespace": "api"}, {"namespace": "web"}
    late, early = (RawChunk(api, "s", when, [[0, '{"traceId":"t"}', "stdout", 0, 0]]).encode()
                   for when in (T0 + 5, T0 - 5))
    got = rules.parser.parse_raw(late, 1)
    assert got is not None and got.mark_ns == T0 + 5, "collected under v1: read, its time marked for the group stage"
    assert rules.parser.parse_raw(early, 1) is None, "collected under the start-up rules: decoded instead"
    nginx = RawChunk(web, "s", T0 + 5, [[0, NGINX, "stdout", 0, 0]]).encode()
    assert rules.parser.parse_raw(nginx, 1) is None, "v1 gives web a text parser: decoded"
