"""Turns raw chunks into parsed lines partitioned by trace id, and dead letters with reasons.

Pure logic, no faust: the parse agent calls it once per chunk, and tests and the benchmark call
it directly. One orjson parse per line; no pydantic on this path (DESIGN.md, Performance).
"""

from __future__ import annotations

from typing import Any

import orjson

from app.models import FLAG_BASE64, FLAG_TRUNCATED, DeadLetter, ParsedChunk, RawChunk, trace_partition
from app.settings import ParseSettings
from app.timeparse import SECOND_CACHE as _SECONDS
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
_EXACT_LEVELS = {**_LEVEL_ALIASES, **{k.upper(): v for k, v in _LEVEL_ALIASES.items()},
                 **{k.capitalize(): v for k, v in _LEVEL_ALIASES.items()}}
_FRACTION_SCALE = [10 ** (9 - digits) for digits in range(10)]


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
    """Parses lines per the `parse` settings; one instance per worker.

    The loop in `parse_chunk` runs once per line at 100K+ lines/s, so the common case is inlined:
    the first configured field name, an RFC 3339 time of a second already seen, an exact level
    name and a trace already hashed in this chunk each cost one dict lookup. Anything else falls
    back to the general helpers, which give the same answers.
    """

    def __init__(self, settings: ParseSettings, stage: str = "parse") -> None:
        self.settings = settings
        self.stage = stage

    def parse_chunk(self, chunk: RawChunk, partitions: int) -> tuple[dict[int, ParsedChunk], list[DeadLetter]]:
        """Parsed chunks per destination partition (hash of trace id), and the dead letters."""
        s = self.settings
        trace_fields, time_fields = s.trace_id_fields, s.time_fields
        level_fields, service_fields = s.level_fields, s.service_fields
        trace0, time0, level0, service0 = trace_fields[0], time_fields[0], level_fields[0], service_fields[0]
        time_format, rfc_fast = s.time_format, s.time_format in ("auto", "rfc3339")
        max_bytes, max_chars = s.max_line_bytes, s.max_line_bytes // 4
        pass_untraced = s.untraced == "pass"
        out: dict[int, ParsedChunk] = {}
        lines_of: dict[int, list[list[Any]]] = {}
        partition_of: dict[str, int] = {}
        dead: list[DeadLetter] = []
        sid, src, fallback_ns = chunk.stream_id, chunk.source, chunk.collected_ns
        loads, decode_error, seconds = orjson.loads, orjson.JSONDecodeError, _SECONDS
        for pos, text, stream, source_ns, flags in chunk.lines:
            if flags & FLAG_BASE64:
                dead.append(DeadLetter("invalid_utf8", "line is not valid UTF-8 (raw bytes kept as base64)",
                                       self.stage, text, True, src, sid, pos))
                continue
            if len(text) > max_chars and len(text.encode()) > max_bytes:
                dead.append(DeadLetter("oversize", f"line longer than parse.max_line_bytes={max_bytes}",
                                       self.stage, text, False, src, sid, pos))
                continue
            text = text.strip()
            try:
                doc = loads(text)
            except decode_error as exc:
                why = "truncated" if flags & FLAG_TRUNCATED else "not_json"
                dead.append(DeadLetter(why, str(exc), self.stage, text, False, src, sid, pos))
                continue
            if type(doc) is not dict:
                dead.append(DeadLetter("not_object", f"JSON {type(doc).__name__}, expected an object",
                                       self.stage, text, False, src, sid, pos))
                continue
            found = doc.get(trace0)
            if found is None:
                found = _first(doc, trace_fields)
            trace = found
            if type(trace) is not str or not trace or len(trace) > _MAX_TRACE_ID or not trace.isprintable():
                trace = _usable_trace(found, pass_untraced)
                if trace is None:
                    why = "missing_trace_id" if found is None else "bad_trace_id"
                    dead.append(DeadLetter(why, f"no usable trace id in fields {trace_fields}",
                                           self.stage, text, False, src, sid, pos))
                    continue
            raw_time = doc.get(time0)
            if raw_time is None:
                raw_time = _first(doc, time_fields)
            time_ns: int | None = None
            if rfc_fast and type(raw_time) is str and len(raw_time) > 20 and raw_time[-1] == "Z" \
                    and raw_time[19] == ".":
                base = seconds.get(raw_time[:19])
                frac = raw_time[20:-1]
                if base is not None and len(frac) <= 9 and frac.isascii() and frac.isdigit():
                    time_ns = base + int(frac) * _FRACTION_SCALE[len(frac)]
            if time_ns is None:
                if raw_time is None:
                    time_ns = source_ns or fallback_ns
                else:
                    time_ns = parse_event_time(raw_time, time_format)
                    if time_ns is None:
                        dead.append(DeadLetter("bad_time", f"cannot parse time {raw_time!r} ({time_format})",
                                               self.stage, text, False, src, sid, pos))
                        continue
            raw_level = doc.get(level0)
            level = _EXACT_LEVELS.get(raw_level) if type(raw_level) is str else None
            if level is None:
                level = normalize_level(raw_level if raw_level is not None else _first(doc, level_fields))
            service = doc.get(service0)
            if service is None:
                service = _first(doc, service_fields)
            key = trace or sid
            part = partition_of.get(key)
            if part is None:
                part = partition_of[key] = trace_partition(key, partitions)
            target = lines_of.get(part)
            if target is None:
                out[part] = ParsedChunk(sources=[src])
                target = lines_of[part] = out[part].lines
            target.append([0, sid, pos, time_ns, trace, level, service if type(service) is str else "",
                           text, stream])
        return out, dead


def _usable_trace(trace: object, pass_untraced: bool) -> str | None:
    """The trace id to use for an unusual value (number, missing), or None to dead-letter the line."""
    if isinstance(trace, int | float) and not isinstance(trace, bool):
        return str(trace)
    if trace is None and pass_untraced:
        return ""
    return None
