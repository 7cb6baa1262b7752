"""Turns raw chunks into parsed lines partitioned by trace id, and dead letters with reasons.

Pure logic, no faust: the parse agent calls it once per chunk, and tests and the benchmark call
it directly. One orjson parse per line; no pydantic on this path (DESIGN.md, Performance).
"""

from __future__ import annotations

from typing import Any

import orjson

from app.models import FLAG_BASE64, FLAG_TRUNCATED, DeadLetter, ParsedChunk, RawChunk, trace_partition
from app.settings import ParseSettings
from app.timeparse import parse_event_time

LEVELS = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}
_LEVEL_ALIASES = {
    "trace": "trace", "debug": "debug", "dbg": "debug", "info": "info", "information": "info",
    "notice": "info", "warn": "warn", "warning": "warn", "error": "error", "err": "error",
    "fatal": "fatal", "critical": "fatal", "crit": "fatal", "panic": "fatal", "alert": "fatal",
    "emerg": "fatal", "emergency": "fatal",
}
_MAX_TRACE_ID = 256


def normalize_level(value: object) -> str:
    """Level name in {trace, debug, info, warn, error, fatal}, or '' if unknown."""
    if isinstance(value, str):
        return _LEVEL_ALIASES.get(value.strip().lower(), "")
    if isinstance(value, int) and not isinstance(value, bool):  # pino/bunyan numeric levels
        return LEVEL_NAMES.get(min(max(value // 10 - 1, 0), 5), "")
    return ""


def _first(doc: dict[str, Any], names: list[str]) -> Any:
    value = doc.get(names[0])
    if value is not None:
        return value
    for name in names:
        if name in doc:
            return doc[name]
        if "." in name:
            node: Any = doc
            for part in name.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                return node
    return None


class LineParser:
    """Parses lines per the `parse` settings; one instance per worker."""

    def __init__(self, settings: ParseSettings, stage: str = "parse") -> None:
        self.settings = settings
        self.stage = stage

    def parse_chunk(self, chunk: RawChunk, partitions: int) -> tuple[dict[int, ParsedChunk], list[DeadLetter]]:
        """Parsed chunks per destination partition (hash of trace id), and the dead letters."""
        s = self.settings
        trace_fields, time_fields = s.trace_id_fields, s.time_fields
        level_fields, service_fields = s.level_fields, s.service_fields
        max_chars = s.max_line_bytes // 4
        out: dict[int, ParsedChunk] = {}
        dead: list[DeadLetter] = []
        sid, src, fallback_ns = chunk.stream_id, chunk.source, chunk.collected_ns
        loads = orjson.loads
        for entry in chunk.lines:
            pos, text, stream, source_ns, flags = entry
            reason = ""
            if flags & FLAG_BASE64:
                reason, detail = "invalid_utf8", "line is not valid UTF-8 (raw bytes kept as base64)"
            elif len(text) > max_chars and len(text.encode()) > s.max_line_bytes:
                reason, detail = "oversize", f"line longer than parse.max_line_bytes={s.max_line_bytes}"
            if reason:
                dead.append(DeadLetter(reason, detail, self.stage, text, bool(flags & FLAG_BASE64), src, sid, pos))
                continue
            text = text.strip()
            try:
                doc = loads(text)
            except orjson.JSONDecodeError as exc:
                why = "truncated" if flags & FLAG_TRUNCATED else "not_json"
                dead.append(DeadLetter(why, str(exc), self.stage, text, False, src, sid, pos))
                continue
            if not isinstance(doc, dict):
                dead.append(DeadLetter("not_object", f"JSON {type(doc).__name__}, expected an object",
                                       self.stage, text, False, src, sid, pos))
                continue
            trace = _first(doc, trace_fields)
            if isinstance(trace, int | float) and not isinstance(trace, bool):
                trace = str(trace)
            if not isinstance(trace, str) or not trace or len(trace) > _MAX_TRACE_ID or not trace.isprintable():
                if trace is None and s.untraced == "pass":
                    trace = ""
                else:
                    why = "missing_trace_id" if trace is None else "bad_trace_id"
                    dead.append(DeadLetter(why, f"no usable trace id in fields {trace_fields}",
                                           self.stage, text, False, src, sid, pos))
                    continue
            raw_time = _first(doc, time_fields)
            if raw_time is None:
                time_ns = source_ns or fallback_ns
            else:
                parsed_time = parse_event_time(raw_time, s.time_format)
                if parsed_time is None:
                    dead.append(DeadLetter("bad_time", f"cannot parse time {raw_time!r} ({s.time_format})",
                                           self.stage, text, False, src, sid, pos))
                    continue
                time_ns = parsed_time
            level = normalize_level(_first(doc, level_fields))
            service = _first(doc, service_fields)
            part = trace_partition(trace or sid, partitions)
            target = out.get(part)
            if target is None:
                target = out[part] = ParsedChunk(sources=[src])
            target.lines.append([0, sid, pos, time_ns, trace, level,
                                 service if isinstance(service, str) else "", text, stream])
        return out, dead
