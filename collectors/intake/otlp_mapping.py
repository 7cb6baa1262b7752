"""OTLP logs (ExportLogsServiceRequest) -> raw lines, one stream per resource of a request.

Each LogRecord becomes one JSON line the rest of the pipeline reads like any other:
`traceId`/`spanId` (hex), `time` (RFC 3339, from time_unix_nano or else observed_time_unix_nano),
`level` (severity_text, or the severity_number's range), `service` (resource `service.name`), the body
(a map body's fields, a string body holding a JSON object parsed into the line, any other body under
`body`), `attributes`, `scope` and the remaining `resource` attributes. Resource `k8s.*` attributes
become source fields (namespace, pod, pod_uid, container, node, restart), as the pod collector's.

Identity: OTLP has no retry key, but its exporters resend the very same request bytes; the request
id is a digest of those bytes, so a resend is the same stream and the worker's dedupe absorbs it.
A record is rejected (counted in the partial-success answer) when its trace or span id has a wrong
length or its line is over max_line_bytes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collectors.intake.lines import Rejection, RequestLines, intake_source, stream_id
from core.models import RawChunk

_K8S_SOURCE = {"k8s.namespace.name": "namespace", "k8s.pod.name": "pod", "k8s.pod.uid": "pod_uid",
               "k8s.container.name": "container", "k8s.node.name": "node",
               "k8s.container.restart_count": "restart"}
_SEVERITY = ((1, "trace"), (5, "debug"), (9, "info"), (13, "warn"), (17, "error"), (21, "fatal"))


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        kv: KeyValue = pair
        out[kv.key] = any_value(kv.value)
    return out


def rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def severity(text: str, number: int) -> str:
    if text:
        return text
    name = ""
    for start, level in _SEVERITY:
        if number >= start:
            name = level
    return name


@dataclass
class MappedRequest:
    chunks: list[RawChunk] = field(default_factory=list)
    rejected: int = 0
    first_error: str = ""
    rejections: list[Rejection] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(len(c.lines) for c in self.chunks)


def _record_doc(record: Any, service: str | None, resource: dict[str, Any], scope: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    body = any_value(record.body)
    if isinstance(body, dict):
        doc.update(body)
    elif isinstance(body, str) and body.lstrip().startswith("{"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            doc.update(parsed)
        else:
            doc["body"] = body
    elif body is not None:
        doc["body"] = body
    if record.trace_id:
        doc["traceId"] = record.trace_id.hex()
    if record.span_id:
        doc["spanId"] = record.span_id.hex()
    time_ns = record.time_unix_nano or record.observed_time_unix_nano
    if time_ns:
        doc["time"] = rfc3339(time_ns)
    level = severity(record.severity_text, record.severity_number)
    if level:
        doc.setdefault("level", level)
    if service:
        doc.setdefault("service", service)
    if record.event_name:
        doc["event"] = record.event_name
    if record.attributes:
        doc["attributes"] = attributes(record.attributes)
    if resource:
        doc["resource"] = resource
    if scope:
        doc["scope"] = scope
    return doc


def map_request(request: ExportLogsServiceRequest, raw: bytes, protocol: str, tenant: str,
                max_line_bytes: int, received_ns: int) -> MappedRequest:
    out = MappedRequest()
    request_key = "otlp-" + blake2b(raw, digest_size=16).hexdigest()
    for r_index, resource_logs in enumerate(request.resource_logs):
        resource = attributes(resource_logs.resource.attributes)
        source = intake_source(protocol, tenant, **{_K8S_SOURCE[k]: resource.pop(k) for k in list(resource)
                                                    if k in _K8S_SOURCE})
        service = resource.pop("service.name", None)
        lines = RequestLines()
        index = 0
        for scope_logs in resource_logs.scope_logs:
            scope = {k: v for k, v in (("name", scope_logs.scope.name), ("version", scope_logs.scope.version))
                     if v}
            if scope_logs.scope.attributes:
                scope["attributes"] = attributes(scope_logs.scope.attributes)
            for record in scope_logs.log_records:
                if len(record.trace_id) not in (0, 16) or len(record.span_id) not in (0, 8):
                    lines.reject(index, "bad_trace_id", "trace_id must be 16 bytes and span_id 8 bytes")
                else:
                    doc = _record_doc(record, service if isinstance(service, str) else None, resource, scope)
                    lines.add_text(index, orjson.dumps(doc), max_line_bytes,
                                   record.time_unix_nano or record.observed_time_unix_nano or received_ns)
                index += 1
        for rejection in lines.rejections:
            out.rejections.append(rejection)
            if not out.first_error:
                out.first_error = f"resource {r_index} {rejection.describe()}"
        out.rejected += len(lines.rejections)
        if lines.lines:
            sid = stream_id(protocol, tenant, f"{request_key}:r{r_index}")
            out.chunks.append(RawChunk(source, sid, received_ns, lines.lines))
    return out
