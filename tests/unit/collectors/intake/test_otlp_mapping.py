"""OTLP records -> lines: severity ranges, bodies of every kind, k8s source fields, rejections."""

from __future__ import annotations

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collectors.intake.otlp_mapping import map_request, rfc3339, severity


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def test_severity_numbers_map_to_level_ranges_and_text_wins() -> None:
    assert [severity("", n) for n in (0, 1, 8, 9, 13, 17, 21, 24)] == \
        ["", "trace", "debug", "info", "warn", "error", "fatal", "fatal"]
    assert severity("Notice", 9) == "Notice"
    assert rfc3339(1_764_669_600_000_000_123) == "2025-12-02T10:00:00.000000123Z"


def test_bodies_sources_and_rejections() -> None:
    records = [
        LogRecord(body=AnyValue(kvlist_value=KeyValueList(values=[kv("msg", "map body")])), severity_number=13),
        LogRecord(body=AnyValue(string_value="plain {text"), observed_time_unix_nano=5),
        LogRecord(body=AnyValue(bytes_value=b"\x01\x02")),
        LogRecord(span_id=b"123", body=AnyValue(string_value="bad span")),
    ]
    resource = Resource(attributes=[kv("service.name", "api"), kv("k8s.pod.uid", "u-1"), kv("host.name", "h")])
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource,
                                                                   scope_logs=[ScopeLogs(log_records=records)])])
    raw = request.SerializeToString()
    mapped = map_request(request, raw, "otlp_http", "t", 1000, 99)
    assert mapped.rejected == 1 and mapped.first_error.startswith("resource 0 record 3") and mapped.lines == 3
    (chunk,) = mapped.chunks
    assert chunk.source["pod_uid"] == "u-1" and chunk.source["tenant"] == "t"
    docs = [orjson.loads(line[1]) for line in chunk.lines]
    assert docs[0] == {"msg": "map body", "level": "warn", "service": "api", "resource": {"host.name": "h"}}
    assert docs[1]["body"] == "plain {text" and docs[1]["time"] == "1970-01-01T00:00:00.000000005Z"
    assert docs[2]["body"] == "0102" and [line[0] for line in chunk.lines] == [0, 1, 2]
    assert chunk.lines[0][3] == 99 and chunk.lines[1][3] == 5
    assert map_request(request, raw, "otlp_http", "t", 1000, 1).chunks[0].stream_id == chunk.stream_id
    assert map_request(request, raw + b"\x00", "otlp_http", "t", 1000, 1).chunks[0].stream_id != chunk.stream_id
