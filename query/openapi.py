"""The OpenAPI 3.1 document of the query API, served at /openapi.json (checked by a validator in tests)."""

from __future__ import annotations

from typing import Any

from core.models import LEVEL_NAMES

_TIME = "RFC 3339 time, epoch milliseconds, or a duration before now (15m, 2h)"


def _param(name: str, description: str, schema: dict[str, Any] | None = None, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}


FILTERS = [
    _param("service", "service name(s), comma-separated"),
    _param("level", f"level(s), comma-separated: {', '.join(LEVEL_NAMES)}"),
    _param("namespace", "Kubernetes namespace(s), comma-separated"),
    _param("pod", "pod name(s), comma-separated"),
    _param("trace_id", "one trace id"),
    _param("q", "words that must all appear in the message (full-text)"),
]
WINDOW = [_param("from", f"start, inclusive ({_TIME}); default: api.default_window before `to`"),
          _param("to", f"end, exclusive ({_TIME}); default: now")]
LINE = {"type": "object", "required": ["time", "line_id", "trace_id", "service", "level", "message"],
        "properties": {"time": {"type": "string", "format": "date-time"}, "time_ns": {"type": "integer"},
                       "line_id": {"type": "string"}, "trace_id": {"type": "string"},
                       "service": {"type": "string"}, "level": {"type": "string"}, "message": {"type": "string"},
                       "namespace": {"type": "string"}, "pod": {"type": "string"}, "container": {"type": "string"},
                       "node": {"type": "string"}, "attributes": {"type": "object"},
                       "tags": {"type": "array", "items": {"type": "string"}}}}
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "parameter": {"type": "string"}}}


def _ok(description: str, schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _errors() -> dict[str, Any]:
    return {code: _ok(text, ERROR) for code, text in (
        ("400", "a parameter is not allowed (the answer names it and what is allowed)"),
        ("401", "no bearer token"), ("403", "the bearer token is not accepted"),
        ("503", "the store is not reachable"), ("504", "the query ran longer than api.statement_timeout"))}


def openapi_document() -> dict[str, Any]:
    page = {"type": "object", "properties": {"lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                                             "count": {"type": "integer"},
                                             "next_cursor": {"type": ["string", "null"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Logweave query API", "version": "1",
                 "description": "Read stored log lines and closed traces back; live tail of new lines."},
        "components": {"schemas": {"Line": LINE, "Error": ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/query": {"get": {"summary": "Search lines, newest first, paged by cursor",
                               "parameters": [*FILTERS, *WINDOW,
                                              _param("limit", "lines per page (1 to api.max_limit, default 100)",
                                                     {"type": "integer", "minimum": 1}),
                                              _param("cursor", "next_cursor of the previous page"),
                                              _param("page", "1-based page number (LogStream compatibility)",
                                                     {"type": "integer", "minimum": 1}),
                                              _param("order", "desc (default) or asc",
                                                     {"type": "string", "enum": ["asc", "desc"]})],
                               "responses": {"200": _ok("a page of lines", page), **_errors()}}},
            "/query/{trace_id}": {"get": {
                "summary": "Every line of a trace in time order, with its closed summary",
                "parameters": [_param("trace_id", "the trace id", where="path", required=True)],
                "responses": {"200": _ok("the trace", {"type": "object"}),
                              "404": _ok("no stored line has this trace id", ERROR), **_errors()}}},
            "/traces": {"get": {
                "summary": "Closed trace summaries, newest first",
                "parameters": [_param("service", "a service the trace passed through"),
                               _param("has_error", "true or false", {"type": "boolean"}), *WINDOW,
                               _param("min_duration", "shortest duration (250ms, 2s)"),
                               _param("limit", "at most this many", {"type": "integer", "minimum": 1})],
                "responses": {"200": _ok("summaries", {"type": "object"}),
                              "501": _ok("this backend keeps no summaries", ERROR), **_errors()}}},
            "/tail": {"get": {"summary": "Server-sent events: each new matching line as `data: <Line JSON>`",
                              "parameters": FILTERS,
                              "responses": {"200": _ok("event stream", {"type": "string"}, "text/event-stream"),
                                            **_errors()}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [],
                                 "responses": {"200": _ok("alive", {"type": "object"})}}},
            "/readyz": {"get": {"summary": "Readiness: the store answers", "security": [],
                                "responses": {"200": _ok("ready", {"type": "object"}),
                                              "503": _ok("not ready", {"type": "object"})}}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": _ok("metrics", {"type": "string"}, "text/plain")}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _ok("OpenAPI 3.1", {"type": "object"})}}},
        },
    }
