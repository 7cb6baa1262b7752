"""Records of one request -> raw lines with a stable identity, and the first bad record.

Identity (docs/chunk-format.md): the lines of one request form one source stream, `sid =
intake:<protocol>:<tenant>:<request id>`, and a line's position is its record's index in the
request. The request id is the client's retry key when it gives one (HTTP `Idempotency-Key`, forward
`chunk`), so a retried request produces the same (sid, position) pairs and the worker's per-stream
dedupe drops the second copy; without a key it is a fresh random id (a retry is then a new stream).
Every record must be a JSON object (or map); anything else is rejected with its index and why,
and the valid records of the same request are still stored.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.models import RawChunk, RawLine, make_raw_line

_REQUEST_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


EXAMPLE_BYTES = 2400  # of a bad record kept as its example (the heartbeat shows less, core/heartbeat_figures.py)


@dataclass(slots=True)
class Rejection:
    index: int
    reason: str  # metric label: not_object, not_json, line_too_long, ...
    detail: str
    record: bytes | None = None  # the bad record as received (its first EXAMPLE_BYTES), when there is one

    def describe(self) -> str:
        return f"record {self.index}: {self.detail}"

    def shown(self) -> str | bytes:
        """The example the heartbeat carries: the record itself, else what was wrong with it."""
        return self.record if self.record is not None else self.describe()


@dataclass(slots=True)
class RequestLines:
    """The accepted lines of one request and what was rejected."""

    lines: list[RawLine] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    size: int = 0

    def reject(self, index: int, reason: str, detail: str, record: bytes | None = None) -> None:
        self.rejections.append(Rejection(index, reason, detail, None if record is None else record[:EXAMPLE_BYTES]))

    def add_text(self, index: int, text: bytes, max_line_bytes: int, received_ns: int) -> None:
        if len(text) > max_line_bytes:
            self.reject(index, "line_too_long", f"{len(text)} bytes is over intake.max_line_bytes ({max_line_bytes})",
                        text)
            return
        self.lines.append(make_raw_line(index, text, "", received_ns))
        self.size += len(text)

    def add_record(self, index: int, record: Any, max_line_bytes: int, received_ns: int) -> None:
        if not isinstance(record, dict):
            self.reject(index, "not_object", f"not a JSON object (got {type_name(record)})", shown_record(record))
            return
        try:
            text = orjson.dumps(record)
        except TypeError as exc:
            self.reject(index, "not_json", f"cannot be written as JSON ({exc})", shown_record(record))
            return
        self.add_text(index, text, max_line_bytes, received_ns)


_DICT = {dict}


def dumped_objects(records: list[Any], max_line_bytes: int) -> list[bytes] | None:
    """Every record written as a JSON line, in one C call each, when all are objects (maps) of JSON
    types within the line limit; None otherwise (the caller then goes record by record and names
    what is wrong)."""
    if not records or set(map(type, records)) != _DICT:
        return None
    try:
        texts = list(map(orjson.dumps, records))
    except TypeError:  # bytes, extension types, non-string keys, integers past 64 bits
        return None
    return texts if max(map(len, texts)) <= max_line_bytes else None


def shown_record(record: Any) -> bytes:
    """A decoded record that could not be stored, as text for its example: JSON where it can be."""
    try:
        return orjson.dumps(record, default=repr)
    except (TypeError, orjson.JSONEncodeError):  # e.g. keys that are not strings
        return repr(record)[:EXAMPLE_BYTES].encode("utf-8", "replace")


def type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number",
            bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


def request_id(key: str | None) -> str:
    """The client's retry key when valid (printable ASCII, 1-200 chars), else a fresh random id."""
    if key is None:
        return uuid.uuid4().hex
    if not _REQUEST_KEY.match(key):
        raise ValueError("Idempotency-Key must be 1-200 printable ASCII characters without spaces")
    return "key:" + key


def stream_id(protocol: str, tenant: str, request: str) -> str:
    return f"intake:{protocol}:{tenant}:{request}"


def intake_source(protocol: str, tenant: str, **extra: Any) -> dict[str, Any]:
    """`src` of an intake chunk: the tenant is also a label, so routing rules can select it."""
    return {"kind": "intake", "protocol": protocol, "tenant": tenant, "labels": {"tenant": tenant}, **extra}


def build_chunk(source: dict[str, Any], sid: str, lines: list[RawLine]) -> RawChunk:
    return RawChunk(source, sid, time.time_ns(), lines)
