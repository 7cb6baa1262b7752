"""Which parsers read a source, and running them over a chunk's lines.

A source's parsers come from its pod annotation `logweave.io/parser` (comma-separated names), else
the first `parse.sources` entry matching its namespace, container and path, else JSON alone - which
keeps the C scan's fast path. Each line is tried against the parsers in order; the first match gives
a record, written as a JSON object (the line's text from then on, what sinks receive) and read by
the JSON reference. A line none matches is kept as `{"message": line}` or dead-lettered as
`no_parser_matched` (`parse.unmatched`).

A chain that tries logfmt first (or JSON, then logfmt) has its common lines rewritten as their records'
JSON in C (agents/parsers/_logfmt.h, `as_json`), byte for byte what `orjson.dumps(parse_logfmt(line))`
gives, so the parse stage's C scan reads them as JSON lines; every line that pass is not sure of takes
the chain here, as before.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable
from typing import Any

import orjson

from agents.parsers.grok import CompiledPattern, compile_grok, compile_regex
from agents.parsers.library import BUILTIN_GROK, EXTRA_PATTERNS, TIME_KIND_OF_PATTERN, LevelRule
from agents.parsers.logfmt import parse_logfmt
from agents.parsers.times import to_rfc3339
from core.models import FLAG_BASE64, DeadLetter
from core.native import native_module
from core.rule_settings import ParserDef, ParserSource
from core.settings import ParseSettings

ANNOTATION = "logweave.io/parser"
_JSON = object()  # a match that the JSON reference reads as it is
log = logging.getLogger(__name__)


Step = tuple[CompiledPattern, str | None, LevelRule | None]  # pattern, time kind, level rule


class TextParser:
    """One named parser: `match(text, reference_ns)` gives a record, `_JSON`, or None."""

    def __init__(self, name: str, kind: str, patterns: list[Step]) -> None:
        self.name, self.kind, self.patterns = name, kind, patterns
        # (time as written, day of the reference, kind) -> RFC 3339: consecutive lines mostly share their
        # second, so the last conversion is kept
        self._last_time: tuple[str, int, str, str] = ("", 0, "", "")

    def match(self, text: str, reference_ns: int) -> Any:
        if self.kind == "json":
            if text[:1] == "{":
                try:
                    if type(orjson.loads(text)) is dict:
                        return _JSON
                except orjson.JSONDecodeError:
                    return None
            return None
        if self.kind == "logfmt":
            return parse_logfmt(text)
        for pattern, time_kind, level_rule in self.patterns:
            record = pattern.match(text)
            if record is None:
                continue
            written = record.get("time")
            if time_kind is not None and type(written) is str:
                day, last = reference_ns // 86_400_000_000_000, self._last_time
                if last[0] != written or last[1] != day or last[2] != time_kind:
                    last = self._last_time = (written, day, time_kind,
                                              to_rfc3339(time_kind, written, reference_ns) or written)
                record["time"] = last[3]
            if level_rule is not None:
                level_rule(record)
            return record
        return None


def build_parsers(settings: ParseSettings) -> dict[str, TextParser]:
    """Every parser a source may name: built-ins, then `parse.parsers` (which may shadow a built-in).

    Raises ValueError naming the parser whose pattern does not compile.
    """
    parsers = {"json": TextParser("json", "json", []), "logfmt": TextParser("logfmt", "logfmt", [])}
    for name, entries in BUILTIN_GROK.items():
        parsers[name] = TextParser(name, "grok", [(compile_grok(expr, EXTRA_PATTERNS), when, level)
                                                  for expr, when, level in entries])
    for definition in settings.parsers:
        parsers[definition.name] = _defined(definition)
    return parsers


def _defined(definition: ParserDef) -> TextParser:
    patterns: list[Step] = []
    try:
        if definition.type == "regex":
            patterns = [(compile_regex(p), None, None) for p in definition.patterns]
        elif definition.type == "grok":
            table = {**EXTRA_PATTERNS, **definition.definitions}
            compiled = [compile_grok(p, table) for p in definition.patterns]
            patterns = [(c, TIME_KIND_OF_PATTERN.get(c.time_pattern), None) for c in compiled]
    except ValueError as exc:
        raise ValueError(f"parse.parsers {definition.name!r}: {exc}") from None
    return TextParser(definition.name, definition.type, patterns)


class TextChain:
    """The parsers of one source, in order, with the settings that shape their records."""

    def __init__(self, parsers: list[TextParser], settings: ParseSettings) -> None:
        self.parsers = parsers
        self.names = [p.name for p in parsers]
        self.deadletter = settings.unmatched == "deadletter"
        self.rename = {canonical: first for canonical, first in (
            ("time", settings.time_fields[0]), ("level", settings.level_fields[0]),
            ("trace_id", settings.trace_id_fields[0]), ("service", settings.service_fields[0]),
            ("message", settings.message_fields[0])) if canonical != first}
        kinds = [p.kind for p in parsers]
        # how the parse scan takes this chain's common logfmt lines (agents/parsers/_logfmt.h): 2 logfmt first,
        # 3 JSON then logfmt (a line starting with "{" is then the JSON parser's), 0 not at all; a line with a
        # key the chain renames (which moves that pair to the record's end) is left to the chain
        self.raw_mode = 2 if kinds[:1] == ["logfmt"] else 3 if kinds[:2] == ["json", "logfmt"] else 0
        self.renamed = tuple(self.rename)

    def as_json(self, lines: list[Any]) -> list[Any] | None:
        """`lines` with each common logfmt line's text replaced by its record's JSON (new raw lines; the others
        are the same objects), for the C scan to read; None when this chain has no such pass (another first
        parser), the C extension is off (LOGWEAVE_PURE=1, an install without a compiler), or logfmt comes
        first and a line left to the chain starts with "{" (the scan would read it as JSON)."""
        scan = native_module("line_scan") if self.raw_mode else None
        return None if scan is None else scan.logfmt_json(lines, self.raw_mode == 3, self.renamed)

    def record(self, text: str, reference_ns: int) -> tuple[str, Any]:
        """(name of the parser that matched or '', its record / _JSON / None)."""
        for parser in self.parsers:
            found = parser.match(text, reference_ns)
            if found is not None:
                if found is not _JSON:
                    for canonical, alias in self.rename.items():
                        if canonical in found and alias not in found:
                            found[alias] = found.pop(canonical)
                return parser.name, found
        return "", None

    def parse_line(self, reference: Callable[[list[Any]], list[Any] | None],
                   from_doc: Callable[[dict[str, Any], str, int, str, int, str], list[Any] | None],
                   dead: list[DeadLetter], chunk_source: dict[str, Any], sid: str, stage: str, fallback_ns: int,
                   ) -> Callable[[list[Any]], list[Any] | None]:
        """A per-line parse like the JSON reference's, trying this chain's parsers first; a text record
        goes to the reference's second half (`from_doc`), so its fields are read exactly as JSON's."""
        message_key = self.rename.get("message", "message")
        dumps = orjson.dumps

        def parse_line(raw: list[Any]) -> list[Any] | None:
            pos, text, stream, source_ns, flags = raw
            if flags & FLAG_BASE64:
                return reference(raw)
            line = text.rstrip("\r\n ")
            _name, record = self.record(line, source_ns or fallback_ns)
            if record is _JSON:
                return reference(raw)
            if record is None:
                if self.deadletter:
                    dead.append(DeadLetter("no_parser_matched", f"none of the parsers {self.names} matched",
                                           stage, text, False, chunk_source, sid, pos))
                    return None
                record = {message_key: line}
            return from_doc(record, dumps(record).decode(), pos, stream, source_ns, text)

        return parse_line


class SourceParsers:
    """Chooses each source's chain; one per worker, chains cached per source."""

    def __init__(self, settings: ParseSettings) -> None:
        self.settings = settings
        self.parsers = build_parsers(settings)
        self.renamed = TextChain([], settings).renamed  # the canonical keys every chain renames
        self.routes: list[ParserSource] = list(settings.sources)
        self._cache: dict[tuple[Any, ...], TextChain | None] = {}

    def chain_for(self, source: dict[str, Any]) -> TextChain | None:
        """The source's chain, or None when it is JSON alone (the C scan's path)."""
        annotations = source.get("annotations")
        named = annotations.get(ANNOTATION) if isinstance(annotations, dict) else None
        key = (named, source.get("namespace"), source.get("container"), source.get("path"))
        if key in self._cache:
            return self._cache[key]
        names = self._names(named, source)
        chain = None if names == ["json"] else TextChain([self.parsers[n] for n in names], self.settings)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = chain
        return chain

    def names_for(self, source: dict[str, Any]) -> list[str]:
        annotations = source.get("annotations")
        return self._names(annotations.get(ANNOTATION) if isinstance(annotations, dict) else None, source)

    def _names(self, named: object, source: dict[str, Any]) -> list[str]:
        if isinstance(named, str) and named.strip():
            names = [n.strip() for n in named.split(",") if n.strip()]
            unknown = [n for n in names if n not in self.parsers]
            if not unknown:
                return names
            log.warning("pod %s/%s: annotation %s names unknown parser(s) %s; using the configured sources",
                        source.get("namespace"), source.get("pod"), ANNOTATION, unknown)
        for route in self.routes:
            if _matches(route, source):
                return list(route.parsers)
        return ["json"]


def _matches(route: ParserSource, source: dict[str, Any]) -> bool:
    if route.namespaces and source.get("namespace") not in route.namespaces:
        return False
    if route.containers and source.get("container") not in route.containers:
        return False
    path = source.get("path")
    return not route.paths or (isinstance(path, str) and any(fnmatch.fnmatchcase(path, g) for g in route.paths))
