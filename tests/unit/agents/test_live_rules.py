"""LiveRules: a valid version replaces parser and router between chunks; a bad one is refused and the old stays."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agents.live_rules import STARTUP, LiveRules
from commands.rules import validated
from core.errors import ConfigError
from core.models import P_TRACE, RawChunk
from core.rules import RulesDocument, decode_rules, load_rules_file
from core.settings import Settings

NGINX = '10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET / HTTP/1.1" 500 1 "-" "x"'
V1 = {"version": "v1", "parse": {"sources": [{"namespaces": ["web"], "parsers": ["nginx"]}]},
      "routing": {"rules": [{"name": "errors", "sinks": ["file"], "level_at_least": "error"}]}}


def record(doc: dict[str, object]) -> bytes:
    return RulesDocument(**doc).encode()


def parse_one(rules: LiveRules, text: str) -> list[list[object]]:
    out, _ = rules.parser.parse_chunk(RawChunk({"namespace": "web"}, "s", 1_700_000_000_000_000_000,
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
