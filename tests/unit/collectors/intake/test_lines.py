"""Intake lines: stream identity per request, and a tenant that routing rules can select."""

from __future__ import annotations

from agents.routing import Router
from collectors.intake.lines import intake_source, stream_id
from core.settings import RoutingSettings


def test_the_tenant_label_selects_a_routing_rule() -> None:
    routing = RoutingSettings(rules=[{"name": "shop-to-es", "sinks": ["elasticsearch"], "labels": {"tenant": "shop"}},
                                     {"name": "all-to-file", "sinks": ["file"]}])
    router = Router(routing, ["file", "elasticsearch"])
    line = [0, "sid", 0, 1, "trace", "info", "", "{}", ""]
    assert router.line_sinks(line, [intake_source("http", "shop")]) == ("elasticsearch", "file")
    assert router.line_sinks(line, [intake_source("http", "other")]) == ("file",)


def test_stream_ids_name_protocol_tenant_and_request() -> None:
    assert stream_id("http", "shop", "key:r-1") == "intake:http:shop:key:r-1"
    assert stream_id("http", "shop", "key:r-1") != stream_id("http", "other", "key:r-1")  # tenants never collide
