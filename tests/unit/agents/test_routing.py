"""Routing rules: defaults, level thresholds, namespaces, labels, fields and regexes."""

from __future__ import annotations

import pytest

from agents.routing import Router, validate_rules
from core.settings import RouteRule, RoutingSettings

SOURCES = [{"namespace": "shop", "labels": {"team": "a"}}, {"namespace": "ops", "labels": {}}]


def line(level: str, service: str = "api", src: int = 0, text: str = '{"msg":"ok","code":"200"}') -> list:
    return [src, "s", 1, 0, "t", level, service, text, "stdout"]


def test_default_routes_every_line_to_every_enabled_sink() -> None:
    router = Router(RoutingSettings(), ["file", "etcd"])
    assert router.line_sinks(line("debug"), SOURCES) == ("file", "etcd")


def test_rules_combine_predicates() -> None:
    rules = RoutingSettings(rules=[
        RouteRule(name="errors", sinks=["elasticsearch"], level_at_least="warn"),
        RouteRule(name="shop", sinks=["file"], namespace=["shop"], labels={"team": "a"}),
        RouteRule(name="codes", sinks=["s3"], fields={"code": "500"}, regex={"msg": "^time"}),
    ])
    router = Router(rules, ["file", "elasticsearch", "s3"])
    assert router.line_sinks(line("error"), SOURCES) == ("elasticsearch", "file")
    assert router.line_sinks(line("info", src=1), SOURCES) == ()
    assert router.line_sinks(line("info", src=1, text='{"msg":"timeout","code":"500"}'), SOURCES) == ("s3",)


def test_trace_rules_are_separate() -> None:
    rules = RoutingSettings(rules=[RouteRule(name="error-traces", sinks=["file"], mode="trace",
                                             level_at_least="error")])
    router = Router(rules, ["file"])
    assert router.line_sinks(line("error"), SOURCES) == ()
    assert router.trace_rule_hits(line("error"), SOURCES) == ["error-traces"]
    assert router.trace_rule_hits(line("info"), SOURCES) == []
    assert router.trace_sinks(["error-traces"]) == ("file",)


def test_invalid_regex_and_level_are_named() -> None:
    with pytest.raises(ValueError, match=r"rule 'bad'.*regex for 'msg'"):
        validate_rules(RoutingSettings(rules=[RouteRule(name="bad", sinks=["file"], regex={"msg": "("})]))
    with pytest.raises(ValueError, match="level_at_least 'loud'"):
        validate_rules(RoutingSettings(rules=[RouteRule(name="x", sinks=["file"], level_at_least="loud")]))
