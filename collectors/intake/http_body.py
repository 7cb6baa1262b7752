"""The three body shapes of `POST /v1/logs`: a JSON array, NDJSON, or `{"logs": [...]}`.

Fluent Bit's `http` output sends `json` (an array) or `json_lines` (NDJSON); Vector's `http` sink
sends an array (codec json) or NDJSON (framing newline_delimited). A body starting with `[` is an
array; one starting with `{` that parses whole is either the `logs` envelope or a single record;
otherwise it is read as NDJSON, one record per non-blank line. NDJSON lines that are objects are
kept as sent, without surrounding whitespace (no re-encoding); records of an array are written back as
compact JSON.

NDJSON has two paths with one result. The careful one parses each row with orjson (what the worker
parses lines with) and names the first bad record. The bulk one, for the common request, checks
every row with simdjson without building Python objects (one C call per row, about 3x cheaper) and
takes the rows as they are when all are JSON objects within the limits. simdjson accepts a subset
of what orjson accepts (it refuses integers past 64 bits, nesting past 1,023 levels, everything
orjson refuses) once a row must start with `{` (simdjson skips a byte-order mark), so a row it
accepts is a row the careful path accepts, unchanged; anything else falls to the careful path.
tests/unit/collectors/intake/test_http_body.py holds both to one result.
"""

from __future__ import annotations

import operator

import orjson
import simdjson

from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import RequestLines, dumped_objects, type_name


def _too_many(count: int, max_records: int) -> LimitExceeded:
    return LimitExceeded("too_many_records", f"{count} records is over intake.max_records ({max_records})")


def parse_body(body: bytes, content_type: str, max_records: int, max_line_bytes: int,
               received_ns: int) -> RequestLines:
    """Accepted lines and rejections; LimitExceeded when the request has too many records.

    A body that is neither an array, an envelope nor NDJSON yields one rejection (index 0)."""
    out = RequestLines()
    head = body.lstrip()[:1]
    ndjson = "ndjson" in content_type or "json-lines" in content_type or "jsonlines" in content_type
    if not ndjson and head in (b"[", b"{"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if head == b"[":
                out.reject(0, "not_json", f"body is not a valid JSON array ({exc})", body)
                return out
        else:
            records = doc.get("logs", doc) if isinstance(doc, dict) else doc
            if isinstance(records, dict):
                records = [records]
            if not isinstance(records, list):
                out.reject(0, "not_object", f"\"logs\" must be an array (got {type_name(records)})", body)
                return out
            if len(records) > max_records:
                raise _too_many(len(records), max_records)
            texts = dumped_objects(records, max_line_bytes)
            if texts is not None:  # the common array, without per-record Python calls
                out.lines = [[index, text.decode(), "", received_ns, 0] for index, text in enumerate(texts)]
                out.size = sum(map(len, texts))
                return out
            for index, record in enumerate(records):
                out.add_record(index, record, max_line_bytes, received_ns)
            return out
    return _ndjson(body, out, max_records, max_line_bytes, received_ns)


_PARSER = simdjson.Parser()  # used on the event loop only; a document must be dropped before the next parse
_OBJECT = {simdjson.Object}
_BRACE = {ord("{")}
_first_byte = operator.itemgetter(0)


def all_objects(rows: list[bytes], max_line_bytes: int) -> bool:
    """Whether every row is a JSON object (as orjson reads it) of at most `max_line_bytes`.

    False when unsure too: a blank row, or anything simdjson refuses; the careful path then decides."""
    if not rows or max(map(len, rows)) > max_line_bytes:
        return False
    try:  # `{` first: simdjson also skips a byte-order mark, which orjson refuses
        if set(map(_first_byte, rows)) != _BRACE:
            return False
    except IndexError:  # a blank row
        return False
    try:  # type() keeps no reference to the document, so the parser is free for the next row
        return set(map(type, map(_PARSER.parse, rows))) == _OBJECT
    except (ValueError, RuntimeError):  # simdjson's refusals (RuntimeError: e.g. BIGINT_ERROR)
        return False


def _ndjson(body: bytes, out: RequestLines, max_records: int, max_line_bytes: int,
            received_ns: int) -> RequestLines:
    rows = body.split(b"\n")
    if rows and not rows[-1]:
        rows.pop()
    if len(rows) > max_records:
        raise _too_many(len(rows), max_records)
    rows = list(map(bytes.strip, rows))
    if all_objects(rows, max_line_bytes):
        # the common request, without per-record Python calls: every row a JSON object within the limit
        out.lines = [[index, row.decode(), "", received_ns, 0] for index, row in enumerate(rows)]
        out.size = sum(map(len, rows))
        return out
    return careful_ndjson(rows, out, max_records, max_line_bytes, received_ns)


def careful_ndjson(rows: list[bytes], out: RequestLines, max_records: int, max_line_bytes: int,
                   received_ns: int) -> RequestLines:
    """Row by row with orjson: the reference for the bulk path, and the one that names bad records."""
    rows = [row for row in (r.strip() for r in rows) if row]
    if len(rows) > max_records:
        raise _too_many(len(rows), max_records)
    for index, row in enumerate(rows):
        if len(row) > max_line_bytes:
            out.add_text(index, row, max_line_bytes, received_ns)  # rejected as too long, unparsed
            continue
        try:
            record = orjson.loads(row)
        except orjson.JSONDecodeError as exc:
            out.reject(index, "not_json", f"not valid JSON ({exc})", row)
            continue
        if isinstance(record, dict):
            out.add_text(index, row, max_line_bytes, received_ns)
        else:
            out.reject(index, "not_object", f"not a JSON object (got {type_name(record)})", row)
    return out
