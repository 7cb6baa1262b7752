"""Turns raw chunks into parsed lines partitioned by trace id, and dead letters with reasons.

Pure logic, no faust: the parse agent calls it once per chunk, and tests and the benchmark call
it directly. The common line is scanned in C (agents/_linescan.c) and any other takes one orjson
parse; no pydantic on this path (docs/architecture.md, "Why chunks").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from agents.encoded_lines import EncodedLines
from agents.field_names import SERILOG_MESSAGE_KEYS, SEVERITY_NUMBER_FIELDS, Aliases, object_time, severity_number_level
from agents.parsers import SourceParsers
from agents.parsers.chain import TextChain
from core.models import (
    FLAG_BAD_PREFIX,
    FLAG_BASE64,
    FLAG_TRUNCATED,
    LEVEL_NAMES,
    P_TRACE,
    DeadLetter,
    ParsedChunk,
    RawChunk,
    trace_partition,
)
from core.native import native_module
from core.settings import ParseSettings
from core.timeparse import EPOCH_UNITS, parse_event_time
from core.timeparse import SECOND_CACHE as _SECONDS

_LEVEL_ALIASES = {
    "trace": "trace", "debug": "debug", "dbg": "debug", "info": "info", "information": "info",
    "notice": "info", "warn": "warn", "warning": "warn", "error": "error", "err": "error",
    "fatal": "fatal", "critical": "fatal", "crit": "fatal", "panic": "fatal", "alert": "fatal",
    "emerg": "fatal", "emergency": "fatal",
    # Serilog (Verbose), zap (dpanic), java.util.logging (severe, config, fine, finer, finest)
    "verbose": "trace", "dpanic": "error", "severe": "error", "config": "info", "fine": "debug", "finer": "trace",
    "finest": "trace",
}
_MAX_TRACE_ID = 256
# (record, its JSON text, position, stream, source time ns, the line as written) -> entry or None
FromDoc = Callable[[dict[str, Any], str, int, str, int, str], "list[Any] | None"]
_EXACT_LEVELS = {**_LEVEL_ALIASES, **{k.upper(): v for k, v in _LEVEL_ALIASES.items()},
                 **{k.capitalize(): v for k, v in _LEVEL_ALIASES.items()}}
_FRACTION_SCALE = [10 ** (9 - digits) for digits in range(10)]
# The C scan's reading of an integer time: ns per unit, 0 = guess from the magnitude, -1 = not a time
_EPOCH_UNIT = {"auto": 0, "rfc3339": -1, **EPOCH_UNITS}
_SOURCES_KEPT = 4096  # decoded sources remembered by their bytes: a file's source is in every record of its lines


@dataclass(slots=True)
class RawParse:
    """A `logs.raw` record parsed from its bytes: per segment (source, stream id, encoded entries per
    partition), the dead letters, the record's collection time and its line count."""

    collected_ns: int
    line_count: int
    segments: list[tuple[dict[str, Any], str, dict[int, EncodedLines]]]
    dead: list[DeadLetter]
    mark_ns: int | None = None  # the collection time to write into its parsed records (live rules), if any


def normalize_level(value: object) -> str:
    """Level name in {trace, debug, info, warn, error, fatal}, or '' if unknown."""
    if isinstance(value, str):
        return _LEVEL_ALIASES.get(value.strip().lower(), "")
    if isinstance(value, int) and not isinstance(value, bool):  # pino/bunyan numeric levels
        return LEVEL_NAMES[min(max(value // 10 - 1, 0), 5)]
    return ""


class LineParser:
    """Parses lines per the `parse` settings; one instance per worker.

    Every line runs at 100K+ lines/s, so the common line (first configured field names, an RFC 3339
    time, an exact level name) is handled by the C scan in agents/_linescan.c, and the reference,
    `parse_line`, inlines the same common case for lines the scan hands back.
    """

    def __init__(self, settings: ParseSettings, stage: str = "parse") -> None:
        self.settings = settings
        self.stage = stage
        self.aliases = (Aliases(settings.trace_id_fields), Aliases(settings.time_fields),
                        Aliases(settings.level_fields, serilog_info=True), Aliases(settings.service_fields))
        names = tuple(a.names for a in self.aliases)
        watch = tuple(a.watch for a in self.aliases)
        # the scan takes up to 16 names (and 32 watched keys) per field and reads an integer level the
        # pino way: more aliases, or a SeverityNumber first, leave every line to the reference
        self._scan = native_module("line_scan")
        usable = self._scan is not None and all(1 <= len(f) <= 16 for f in names) \
            and all(len(w) <= 32 for w in watch) and settings.level_fields[0] not in SEVERITY_NUMBER_FIELDS
        self._scan_fields = names + watch if usable else None
        self.sources = SourceParsers(settings)  # text parsers of sources that are not JSON (agents/parsers)
        self._decoded_sources: dict[bytes, dict[str, Any]] = {}

    def parse_raw(self, payload: bytes, partitions: int) -> RawParse | None:
        """`parse_chunk` of every stream of a decompressed `logs.raw` record, read from its bytes by the
        C split (agents/_rawsplit.h, `split_raw`): its entries stay encoded (agents/encoded_lines.py).

        None when the record is not exactly as orjson writes a raw chunk, holds a source with text
        parsers other than logfmt first (or JSON, then logfmt: TextChain.raw_mode), or the scan is off:
        decode it (`raw_chunks_of`) and take `parse_chunk`. Lines the scan is not sure of take the
        reference, `parse_line` (a logfmt source's: its parser chain), as in `parse_chunk`.
        """
        scan, fields = self._scan, self._scan_fields
        if scan is None or fields is None:
            return None
        s = self.settings
        dead: list[DeadLetter] = []  # kept only when the record is read: declined, it is parsed again
        segments: list[tuple[dict[str, Any], str, int, TextChain | None]] = []
        references: dict[int, Callable[[list[Any]], list[Any] | None]] = {}

        def source_of(segment: int, src_start: int, src_end: int, sid_start: int, sid_end: int, ct: int) -> bool | int:
            source = self._source(payload[src_start:src_end])
            if source is None:
                return False
            chain = self.sources.chain_for(source)
            mode = True if chain is None else chain.raw_mode  # a logfmt chain's lines are read as their JSON
            if not mode:
                return False
            segments.append((source, orjson.loads(payload[sid_start:sid_end]), ct, chain))
            return mode

        def slow(segment: int, start: int, end: int) -> tuple[int, bytes] | None:
            reference = references.get(segment)
            source, sid, ct, chain = segments[segment]
            if reference is None:
                parse_line, from_doc = self.line_parsers(RawChunk(source, sid, ct, []), dead)
                reference = references[segment] = parse_line if chain is None else \
                    chain.parse_line(parse_line, from_doc, dead, source, sid, self.stage, ct)
            entry = reference(orjson.loads(payload[start:end]))
            if entry is None:
                return None
            return trace_partition(entry[P_TRACE] or sid, partitions), orjson.dumps(entry)

        got = scan.split_raw(payload, fields, _EXACT_LEVELS, partitions, s.max_line_bytes,
                             s.time_format in ("auto", "rfc3339"), _EPOCH_UNIT[s.time_format], source_of, slow,
                             self.sources.renamed)
        if got is None:
            return None
        collected, line_count, outputs = got
        return RawParse(collected, line_count, [
            (source, sid, {part: EncodedLines(body, ends) for part, (body, ends) in out.items()})
            for (source, sid, _, _), out in zip(segments, outputs, strict=True)], dead)

    def _source(self, literal: bytes) -> dict[str, Any] | None:
        """The source object written as `literal`, one object per spelling (None: not an object)."""
        source = self._decoded_sources.get(literal)
        if source is None:
            try:
                source = orjson.loads(literal)
            except orjson.JSONDecodeError:
                return None
            if type(source) is not dict:
                return None
            if len(self._decoded_sources) >= _SOURCES_KEPT:
                self._decoded_sources.clear()
            self._decoded_sources[literal] = source
        return source

    def parse_chunk(self, chunk: RawChunk, partitions: int) -> tuple[dict[int, ParsedChunk], list[DeadLetter]]:
        """Parsed chunks per destination partition (hash of trace id), and the dead letters.

        The C scan (agents/_linescan.c) takes every line it is sure of and hands the rest, in
        order, to `parse_line`, the reference; without the extension (or with
        LOGWEAVE_PURE=1, core/native.py) every line takes the reference.
        """
        s = self.settings
        dead: list[DeadLetter] = []
        sid, fallback_ns = chunk.stream_id, chunk.collected_ns
        chain = self.sources.chain_for(chunk.source) if type(chunk.source) is dict else None
        scan = self._scan
        lines = chunk.lines
        scanned = self._scan_fields is not None and scan is not None and type(sid) is str \
            and type(fallback_ns) is int and -(1 << 63) <= fallback_ns < (1 << 63) and type(lines) is list
        if scanned and chain is not None:  # a logfmt source: its common lines as their records' JSON
            as_json = chain.as_json(lines)
            scanned = as_json is not None
            lines = as_json if as_json is not None else lines
        if scanned and scan is not None:
            # the reference is built only if the scan hands a line back: on a live node a chunk holds a few
            # lines of one stream, and building it cost a third of parsing them
            reference: Callable[[list[Any]], list[Any] | None] | None = None
            originals: dict[int, list[Any]] | None = None

            def hand_back(raw: list[Any]) -> list[Any] | None:
                nonlocal reference, originals
                if reference is None:
                    parse_line, from_doc = self.line_parsers(chunk, dead)
                    reference = parse_line if chain is None else \
                        chain.parse_line(parse_line, from_doc, dead, chunk.source, sid, self.stage, fallback_ns)
                if chain is not None:  # a rewritten line goes back to the chain as it was written
                    if originals is None:
                        originals = {id(new): old for new, old in zip(lines, chunk.lines, strict=True)
                                     if new is not old}
                    raw = originals.get(id(raw), raw)
                return reference(raw)

            lines_of = scan.split(lines, self._scan_fields, _EXACT_LEVELS, partitions, s.max_line_bytes,
                                  fallback_ns, sid, s.time_format in ("auto", "rfc3339"),
                                  _EPOCH_UNIT[s.time_format], hand_back)
        else:
            parse_line, from_doc = self.line_parsers(chunk, dead)
            if chain is not None:
                parse_line = chain.parse_line(parse_line, from_doc, dead, chunk.source, sid, self.stage, fallback_ns)
            lines_of = {}
            for raw in lines:
                entry = parse_line(raw)
                if entry is not None:
                    lines_of.setdefault(trace_partition(entry[P_TRACE] or sid, partitions), []).append(entry)
        return {part: ParsedChunk([chunk.source], lines) for part, lines in lines_of.items()}, dead

    def line_parser(self, chunk: RawChunk, dead: list[DeadLetter]) -> Callable[[list[Any]], list[Any] | None]:
        """The reference parse of one raw line of `chunk`: its parsed entry, or None after adding its
        dead letter to `dead`. Every rule of the parse stage is here; the C scan only skips work."""
        return self.line_parsers(chunk, dead)[0]

    def line_parsers(self, chunk: RawChunk, dead: list[DeadLetter]) -> tuple[Callable[[list[Any]], list[Any] | None],
                                                                              FromDoc]:
        """`line_parser`, and its second half: the entry of an already decoded record (text parsers)."""
        s = self.settings
        trace_fields = s.trace_id_fields
        trace_aliases, time_aliases, level_aliases, service_aliases = self.aliases
        serilog = level_aliases.serilog
        trace0, time0 = trace_fields[0], s.time_fields[0]
        level0, service0 = s.level_fields[0], s.service_fields[0]
        time_format, rfc_fast = s.time_format, s.time_format in ("auto", "rfc3339")
        max_bytes, max_chars = s.max_line_bytes, s.max_line_bytes // 4
        pass_untraced = s.untraced == "pass"
        sid, src, fallback_ns = chunk.stream_id, chunk.source, chunk.collected_ns
        loads, decode_error, seconds, stage = orjson.loads, orjson.JSONDecodeError, _SECONDS, self.stage

        def bad_entry(raw: Any) -> None:
            """A chunk entry that is not a raw line (a foreign or corrupted producer): dead-lettered, never raised."""
            dead.append(DeadLetter("bad_entry", "raw line entry is not [position, text, stream, source_ns, flags]",
                                   stage, repr(raw)[:4096], False, src, sid, -1))

        def parse_line(raw: list[Any]) -> list[Any] | None:
            if type(raw) is not list or len(raw) != 5:
                bad_entry(raw)
                return None
            pos, text, stream, source_ns, flags = raw
            if type(text) is not str or type(pos) is not int or type(flags) is not int or type(source_ns) is not int:
                bad_entry(raw)
                return None
            if flags & FLAG_BASE64:
                dead.append(DeadLetter("invalid_utf8", "line is not valid UTF-8 (raw bytes kept as base64)",
                                       stage, text, True, src, sid, pos))
                return None
            if len(text) > max_chars and len(text.encode()) > max_bytes:
                dead.append(DeadLetter("oversize", f"line longer than parse.max_line_bytes={max_bytes}",
                                       stage, text, False, src, sid, pos))
                return None
            text = text.strip()
            try:
                doc = loads(text)
            except decode_error as exc:
                why = ("truncated" if flags & FLAG_TRUNCATED
                       else "bad_cri_prefix" if flags & FLAG_BAD_PREFIX else "not_json")
                dead.append(DeadLetter(why, str(exc), stage, text, False, src, sid, pos))
                return None
            if type(doc) is not dict:
                dead.append(DeadLetter("not_object", f"JSON {type(doc).__name__}, expected an object",
                                       stage, text, False, src, sid, pos))
                return None
            return from_doc(doc, text, pos, stream, source_ns, text)

        def from_doc(doc: dict[str, Any], text: str, pos: int, stream: str, source_ns: int,
                     original: str) -> list[Any] | None:
            """The entry of record `doc` written as `text`; dead letters keep the `original` line."""
            found = doc.get(trace0)
            if found is None:
                found = trace_aliases.first(doc)[1]
            trace = found
            if type(trace) is not str or not trace or len(trace) > _MAX_TRACE_ID or not trace.isprintable():
                trace = _usable_trace(found, pass_untraced)
                if trace is None:
                    why = "missing_trace_id" if found is None else "bad_trace_id"
                    dead.append(DeadLetter(why, f"no usable trace id in fields {trace_fields}",
                                           stage, original, False, src, sid, pos))
                    return None
            raw_time = doc.get(time0)
            if raw_time is None:
                raw_time = time_aliases.first(doc)[1]
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
                    time_ns = parse_event_time(raw_time, time_format) if type(raw_time) is not dict \
                        else object_time(raw_time)
                    if time_ns is None:
                        dead.append(DeadLetter("bad_time", f"cannot parse time {raw_time!r} ({time_format})",
                                               stage, original, False, src, sid, pos))
                        return None
            raw_level = doc.get(level0)
            level = _EXACT_LEVELS.get(raw_level) if type(raw_level) is str else None
            if level is None:
                level = _level(doc, raw_level, level_aliases, serilog)
            service = doc.get(service0)
            if type(service) is not str:
                service = service_aliases.first_string(doc) or ""
            return [0, sid, pos, time_ns, trace, level, service, text, stream]

        return parse_line, from_doc


def _level(doc: dict[str, Any], raw_level: object, aliases: Aliases, serilog: bool) -> str:
    """The level of a line whose first level field is missing or not an exact level name."""
    name, value = (aliases.names[0], raw_level) if raw_level is not None else aliases.first(doc)
    if value is None:
        return "info" if serilog and any(key in doc for key in SERILOG_MESSAGE_KEYS) else ""
    if name in SEVERITY_NUMBER_FIELDS and type(value) is int:
        return severity_number_level(value)
    return normalize_level(value)


def _usable_trace(trace: object, pass_untraced: bool) -> str | None:
    """The trace id to use for an unusual value (number, missing), or None to dead-letter the line."""
    if isinstance(trace, int | float) and not isinstance(trace, bool):
        return str(trace)
    if trace is None and pass_untraced:
        return ""
    return None
