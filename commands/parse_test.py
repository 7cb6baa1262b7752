"""`logweave parse-test --source ... FILE`: which parser reads each sample line, and the record it makes.

Operators try parser settings on sample lines before rolling them out; this runs the parse stage's
own code (agents/line_parser.py and agents/parsers/) on each line of FILE as if it came from the
given source, and prints one JSON object per line: the parser that matched, the trace id, time,
level and service read from it, and the record the sinks would receive - or the dead-letter reason.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from agents.line_parser import LineParser
from agents.parsers.chain import ANNOTATION
from core.errors import ConfigError
from core.models import P_LEVEL, P_SERVICE, P_TEXT, P_TIME, P_TRACE, RawChunk
from core.settings import ParseSettings

SOURCE_KEYS = ("namespace", "pod", "container", "path", "annotation")


def parse_source(text: str) -> dict[str, Any]:
    """`namespace=shop,container=api,annotation=nginx` as a chunk source (annotation -> pod annotation)."""
    source: dict[str, Any] = {"kind": "parse-test"}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in SOURCE_KEYS:
            raise ConfigError(f"--source {text!r}: expected key=value pairs with keys {', '.join(SOURCE_KEYS)}")
        if key == "annotation":
            source["annotations"] = {ANNOTATION: value.replace("+", ",")}
        else:
            source[key] = value
    return source


def run_parse_test(settings: ParseSettings, source: dict[str, Any], path: Path, out: TextIO | None = None) -> int:
    """Print one JSON object per line of `path`; return 0 if every line made a record, 1 otherwise."""
    try:
        parser = LineParser(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        lines = path.read_text(errors="surrogateescape").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    out = out or sys.stdout
    chain = parser.sources.chain_for(source)
    now = time.time_ns()
    failed = 0
    for number, line in enumerate(lines, 1):
        out_chunks, dead = parser.parse_chunk(RawChunk(source, "parse-test", now, [[number, line, "stdout", 0, 0]]), 1)
        report: dict[str, Any] = {"line": number}
        if chain is not None:
            report["parser"] = chain.record(line.rstrip("\r\n "), now)[0] or "(none: kept as message)"
        else:
            report["parser"] = "json"
        entries = [entry for chunk in out_chunks.values() for entry in chunk.lines]
        if entries:
            entry = entries[0]
            report.update(trace=entry[P_TRACE], time_ns=entry[P_TIME], level=entry[P_LEVEL],
                          service=entry[P_SERVICE], record=orjson.loads(entry[P_TEXT]))
        else:
            failed += 1
            report.update(dead_letter=dead[0].reason, detail=dead[0].detail)
        out.write(orjson.dumps(report).decode() + "\n")
    names = chain.names if chain is not None else ["json"]
    print(f"{len(lines) - failed} of {len(lines)} lines made a record (parsers tried: {', '.join(names)})",
          file=sys.stderr)
    return 1 if failed else 0
