"""Pure logic of the Elasticsearch sink: index names, the template, per-item bulk classification."""

from __future__ import annotations

from typing import Any

import orjson

from core.settings import ElasticsearchSinkSettings, Settings
from sinks.base import SinkBatch, SinkLine
from sinks.elasticsearch import ElasticsearchSink, classify, index_name, index_template

DAY1 = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z

# A bulk response recorded from noida-db (Elasticsearch 8.15 API): created, mapping conflict, create conflict.
RECORDED = orjson.loads(
    b'{"errors": true, "items": [{"index": {"_index": "x-1", "_id": "a", "_version": 1, "result": "created",'
    b' "status": 201}}, {"index": {"error": {"type": "document_parsing_exception", "reason": "[1:12] failed to'
    b' parse field [n] of type [long] in document with id \'b\'. Preview of field\'s value: \'{o=1}\'",'
    b' "caused_by": {"type": "illegal_argument_exception", "reason": "Cannot parse object as number"}},'
    b' "_index": "x-1", "_id": "b", "status": 400}}, {"create": {"error": {"type":'
    b' "version_conflict_engine_exception", "reason": "[a]: version conflict, document already exists'
    b' (current version [1])"}, "_index": "x-1", "_id": "a", "status": 409}}], "took": 0}'
)


def line(n: int, time_ns: int = DAY1) -> SinkLine:
    return SinkLine(f"lid-{n}", "t", time_ns, "info", "svc", b'{"n":1}', n, 0)


def batch(count: int) -> SinkBatch:
    return SinkBatch("sink.elasticsearch", 0, [line(n) for n in range(count)])


def test_daily_index_from_event_time_in_utc_with_configurable_format() -> None:
    assert index_name(ElasticsearchSinkSettings(index_prefix="lw"), DAY1) == "lw-2025.06.10"
    just_before_midnight = 1_749_599_999_999_999_999  # 2025-06-10T23:59:59.999999999Z
    assert index_name(ElasticsearchSinkSettings(index_prefix="lw"), just_before_midnight) == "lw-2025.06.10"
    monthly = ElasticsearchSinkSettings(index_prefix="app", index_date_format="%Y-%m")
    assert index_name(monthly, DAY1) == "app-2025-06"


def test_template_maps_identity_and_kubernetes_fields_as_keywords() -> None:
    template = index_template("lw")
    assert template["index_patterns"] == ["lw-*"]
    props: dict[str, Any] = template["template"]["mappings"]["properties"]
    assert {props[k]["type"] for k in ("traceId", "level", "service")} == {"keyword"}
    meta = props["logweave"]["properties"]
    assert meta["trace"]["type"] == "keyword" and meta["time_ns"]["type"] == "long"
    source = meta["source"]["properties"]
    assert {source[k]["type"] for k in ("namespace", "pod", "pod_uid", "container", "node")} == {"keyword"}


def test_recorded_response_created_rejected_and_conflict_as_written() -> None:
    result = classify(batch(3), RECORDED["items"])
    assert not result.retry
    assert [(f.line.line_id, f.reason) for f in result.permanent] == [("lid-1", "index_rejected")]
    assert "document_parsing_exception" in result.permanent[0].detail
    assert "failed to parse field [n]" in result.permanent[0].detail


def test_429_and_5xx_items_alone_are_retried() -> None:
    items: list[dict[str, Any]] = [
        {"index": {"status": 201}},
        {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
        {"index": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary down"}}},
        {"index": {"status": 200}},
    ]
    result = classify(batch(4), items)
    assert [f.line.line_id for f in result.retry] == ["lid-1", "lid-2"]
    assert result.retry[0].detail.startswith("429 es_rejected_execution_exception")
    assert not result.permanent


def test_batch_limits_are_the_generic_sink_settings() -> None:
    settings = Settings(sinks={"batch_size": 700, "batch_bytes": 2_000_000, "batch_period": 0.5})
    assert ElasticsearchSink.from_settings(settings).batch_limits() == (700, 2_000_000, 0.5)
