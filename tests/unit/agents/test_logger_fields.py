"""The default field aliases read what common loggers write by default, one case per logger.

Each line is shaped as that logger writes it with its documented default encoder/layout (plus the
trace-id field its usual OpenTelemetry/MDC integration adds); docs/parsing.md has the table. Every
case is parsed through the C scan and through the reference alone, and both must give the record.
"""

from __future__ import annotations

from typing import Any

import pytest

from agents.line_parser import LineParser
from core.models import P_LEVEL, P_SERVICE, P_TIME, P_TRACE, RawChunk
from core.settings import ParseSettings
from tests.unit.agents.test_linescan import both

T = "4bf92f3577b34da6a3ce929d0e0e4736"
S = 1_700_000_000  # 2023-11-14T22:13:20Z

# "$T" in a line stands for the trace id T
CASES: list[tuple[str, str, str, int, str, str]] = [
    # name, line, trace id, event time ns, level, service
    ("go-slog", '{"time":"2023-11-14T17:13:20.123456789-05:00","level":"WARN","msg":"slow query","trace_id":"$T",'
                '"ms":1200}', T, S * 10**9 + 123_456_789, "warn", ""),
    ("go-zap", '{"level":"error","ts":1700000000.25,"caller":"shop/cart.go:42","msg":"charge failed",'
               '"traceID":"$T","error":"card declined","stacktrace":"main.charge\\n\\tshop/cart.go:42"}',
     T, S * 10**9 + 250_000_000, "error", ""),
    ("go-zap-dpanic", '{"level":"dpanic","ts":1700000000,"msg":"invariant broken","trace_id":"$T"}',
     T, S * 10**9, "error", ""),
    ("go-logrus", '{"level":"warning","msg":"queue is filling up","time":"2023-11-14T22:13:20Z",'
                  '"trace_id":"$T","size":122}', T, S * 10**9, "warn", ""),
    ("go-zerolog", '{"level":"info","trace_id":"$T","time":"2023-11-14T23:13:20+01:00","message":"hello world"}',
     T, S * 10**9, "info", ""),
    ("java-logback-jsonencoder",
     '{"sequenceNumber":7,"timestamp":1700000000123,"nanoseconds":123000000,"level":"ERROR","threadName":"main",'
     '"loggerName":"com.shop.Cart","context":{"name":"default","birthdate":1699999990000,"properties":{}},'
     '"mdc": {"traceId":"$T","spanId":"00f067aa0ba902b7"},"message":"charge failed","throwable":null}',
     T, S * 10**9 + 123_000_000, "error", ""),
    ("java-logstash-logback-encoder",
     '{"@timestamp":"2023-11-14T23:13:20.123+01:00","@version":"1","message":"charge failed",'
     '"logger_name":"com.shop.Cart","thread_name":"http-nio-8080-exec-1","level":"WARN","level_value":30000,'
     '"traceId":"$T","spanId":"00f067aa0ba902b7"}', T, S * 10**9 + 123_000_000, "warn", ""),
    ("java-log4j2-jsonlayout",
     '{"instant":{"epochSecond":1700000000,"nanoOfSecond":987654321},"thread":"main","level":"INFO",'
     '"loggerName":"com.shop.Cart","message":"cart saved","endOfBatch":false,'
     '"loggerFqcn":"org.apache.logging.log4j.spi.AbstractLogger","contextMap":{"traceId":"$T"},'
     '"threadId":1,"threadPriority":5}', T, S * 10**9 + 987_654_321, "info", ""),
    ("java-log4j2-ecslayout",
     '{"@timestamp":"2023-11-14T22:13:20.500Z","ecs.version":"1.2.0","log.level":"ERROR","message":"boom",'
     '"process.thread.name":"main","log.logger":"com.shop.Cart","service.name":"cart","trace.id":"$T"}',
     T, S * 10**9 + 500_000_000, "error", "cart"),
    ("ecs-nested", '{"@timestamp":"2023-11-14T22:13:20.000Z","log":{"level":"warn","logger":"cart"},'
                   '"message":"retrying","ecs":{"version":"1.6.0"},"service":{"name":"cart"},'
                   '"trace":{"id":"$T"},"span":{"id":"00f067aa0ba902b7"}}', T, S * 10**9, "warn", "cart"),
    ("python-structlog", '{"event": "user logged in", "user": "alice", "trace_id": "$T", "level": "info", '
                         '"timestamp": "2023-11-14T22:13:20.000001Z"}', T, S * 10**9 + 1000, "info", ""),
    ("python-json-logger",
     '{"asctime": "2023-11-14 22:13:20,042", "levelname": "CRITICAL", "name": "shop", "message": "db down", '
     '"otelSpanID": "00f067aa0ba902b7", "otelTraceID": "$T", "otelTraceSampled": true, '
     '"otelServiceName": "cart"}', T, S * 10**9 + 42_000_000, "fatal", "cart"),
    ("node-pino", '{"level":50,"time":1700000000123,"pid":657,"hostname":"cart-7f9","msg":"charge failed",'
                  '"trace_id":"$T","span_id":"00f067aa0ba902b7","trace_flags":"01"}',
     T, S * 10**9 + 123_000_000, "error", ""),
    ("node-bunyan", '{"name":"cart","hostname":"cart-7f9","pid":40161,"level":40,"msg":"slow","trace_id":"$T",'
                    '"time":"2023-11-14T22:13:20.851Z","v":0}', T, S * 10**9 + 851_000_000, "warn", ""),
    ("node-winston", '{"level":"info","message":"order placed","service":"user-service","trace_id":"$T",'
                     '"timestamp":"2023-11-14T22:13:20.000Z"}', T, S * 10**9, "info", "user-service"),
    ("dotnet-serilog-compact-information",
     '{"@t":"2023-11-14T22:13:20.8532799Z","@mt":"Hello, {User}","@tr":"$T","@sp":"00f067aa0ba902b7",'
     '"User":"nblumhardt"}', T, S * 10**9 + 853_279_900, "info", ""),
    ("dotnet-serilog-compact-warning",
     '{"@t":"2023-11-14T22:13:20Z","@mt":"Disk {Pct}% full","@l":"Warning","@tr":"$T","Pct":91}',
     T, S * 10**9, "warn", ""),
    ("dotnet-serilog-json",
     '{"Timestamp":"2023-11-15T08:13:20.0000000+10:00","Level":"Verbose","MessageTemplate":"tick",'
     '"TraceId":"$T","SpanId":"00f067aa0ba902b7","Properties":{"Application":"cart"}}',
     T, S * 10**9, "trace", ""),
    ("otel-data-model",
     '{"Timestamp":"1700000000000000000","ObservedTimestamp":"1700000000100000000","TraceId":"$T",'
     '"SpanId":"00f067aa0ba902b7","TraceFlags":1,"SeverityText":"ERROR","SeverityNumber":17,'
     '"Body":"payment failed","Resource":{"service.name":"cart","k8s.pod.uid":"1138528c"},'
     '"Attributes":{"http.status_code":500}}', T, S * 10**9, "error", "cart"),
    ("otel-otlp-json-severity-number-only",
     '{"timeUnixNano":"1700000000000000042","severityNumber":13,"traceId":"$T","spanId":"00f067aa0ba902b7",'
     '"body":{"stringValue":"retry"}}', T, S * 10**9 + 42, "warn", ""),
]


@pytest.mark.parametrize(("line", "trace", "time_ns", "level", "service"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_default_aliases_read_the_logger(line: str, trace: str, time_ns: int, level: str, service: str) -> None:
    chunk = RawChunk({"kind": "file"}, "sid", 1, [[0, line.replace("$T", T), "stdout", 0, 0]])
    fast, ref = both(chunk, ParseSettings())
    assert fast == ref, "the C scan and the reference disagree"
    entries = [e for _, lines in fast[0].values() for e in lines]
    assert fast[1] == [], f"dead-lettered: {fast[1]}"
    (entry,) = entries
    got: dict[str, Any] = {"trace": entry[P_TRACE], "level": entry[P_LEVEL], "service": entry[P_SERVICE]}
    assert got == {"trace": trace, "level": level, "service": service}
    assert abs(entry[P_TIME] - time_ns) < 1000  # zap's float seconds carry about 0.25 us of rounding


def test_an_unknown_field_name_is_not_read_as_a_trace() -> None:
    """The aliases must not guess: a logger-specific name absent from the list stays untraced."""
    chunk = RawChunk({}, "sid", 1, [[0, f'{{"correlation":"{T}","level":"info"}}', "stdout", 0, 0]])
    out, dead = LineParser(ParseSettings()).parse_chunk(chunk, 4)
    assert out == {} and [d.reason for d in dead] == ["missing_trace_id"]


def test_severity_number_first_leaves_lines_to_the_reference_which_reads_the_otel_scale() -> None:
    parse = ParseSettings(level_fields=["severityNumber", "level"])
    chunk = RawChunk({}, "sid", 1, [[0, '{"traceId":"t","severityNumber":9}', "stdout", 0, 0]])
    fast, ref = both(chunk, parse)
    assert fast == ref
    assert [e[P_LEVEL] for lines in fast[0].values() for e in lines[1]] == ["info"]


def test_the_default_aliases_keep_the_common_line_on_the_c_scan() -> None:
    """More aliases must not cost the common line its fast path: only lines needing them reach `slow`."""
    from agents import _linescan
    from agents.line_parser import _EXACT_LEVELS
    from tests.bench.bench_worker import make_doc

    parser = LineParser(ParseSettings())
    assert parser._scan_fields is not None
    lines = [[n, make_doc(n, 1_749_543_941_000_000_000 + n).decode(), "stdout", 0, 0] for n in range(200)]
    lines.append([200, CASES[9][1].replace("$T", T), "stdout", 0, 0])  # ECS nested: needs the reference
    taken: list[Any] = []
    _linescan.split(lines, parser._scan_fields, _EXACT_LEVELS, 4, 1 << 20, 1, "sid", True, 0,
                    lambda raw: taken.append(raw))
    assert [raw[0] for raw in taken] == [200]
