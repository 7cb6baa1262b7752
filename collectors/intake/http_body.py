"""The three body shapes of `POST /v1/logs`: a JSON array, NDJSON, or `{"logs": [...]}`.

Fluent Bit's `http` output sends `json` (an array) or `json_lines` (NDJSON); Vector's `http` sink
sends an array (codec json) or NDJSON (framing newline_delimited). A body starting with `[` is an
array; one starting with `{` that parses whole is either the `logs` envelope or a single record;
otherwise it is read as NDJSON, one record per non-blank line. NDJSON lines that are objects are
kept byte for byte (no re-encoding); records of an array are written back as compact JSON.
"""

from __future__ import annotations

import orjson

from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import RequestLines, type_name


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
                out.reject(0, "not_json", f"body is not a valid JSON array ({exc})")
                return out
        else:
            records = doc.get("logs", doc) if isinstance(doc, dict) else doc
            if isinstance(records, dict):
                records = [records]
            if not isinstance(records, list):
                out.reject(0, "not_object", f"\"logs\" must be an array (got {type_name(records)})")
                return out
            if len(records) > max_records:
                raise _too_many(len(records), max_records)
            for index, record in enumerate(records):
                out.add_record(index, record, max_line_bytes, received_ns)
            return out
    return _ndjson(body, out, max_records, max_line_bytes, received_ns)


def _all_objects(rows: list[bytes], max_line_bytes: int) -> bool:
    """Whether every row is a JSON object of at most `max_line_bytes` (False also for a blank row)."""
    if not rows or max(map(len, rows)) > max_line_bytes:
        return False
    try:
        docs = list(map(orjson.loads, rows))
    except orjson.JSONDecodeError:
        return False
    return all(type(doc) is dict for doc in docs)


def _ndjson(body: bytes, out: RequestLines, max_records: int, max_line_bytes: int,
            received_ns: int) -> RequestLines:
    rows = body.split(b"\n")
    if rows and not rows[-1]:
        rows.pop()
    if len(rows) > max_records:
        raise _too_many(len(rows), max_records)
    if _all_objects(rows, max_line_bytes) and b"\r" not in body:
        # the common request, with no per-record Python calls: every row a JSON object within the limit
        out.lines = [[index, row.decode(), "", received_ns, 0] for index, row in enumerate(rows)]
        out.size = len(body) - len(rows)
        return out
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
            out.reject(index, "not_json", f"not valid JSON ({exc})")
            continue
        if isinstance(record, dict):
            out.add_text(index, row, max_line_bytes, received_ns)
        else:
            out.reject(index, "not_object", f"not a JSON object (got {type_name(record)})")
    return out
