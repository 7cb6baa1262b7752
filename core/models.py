"""The chunk records that flow through Kafka, and the identity of a line.

One Kafka message carries many lines (a chunk): per-message framework overhead is what caps a
Python stream processor, so the unit of transport is a batch. The wire format is documented in
docs/chunk-format.md and carries a schema version (`v`) so newer releases can replay old topics.
Plain tuples/lists keep orjson encoding cheap; no pydantic on this hot path.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Final

import orjson

from core.codec import decompress
from core.errors import ChunkFormatError

SCHEMA_VERSION: Final = 1
RAW_BATCH_VERSION: Final = 2  # `logs.raw` records carrying many streams (RawBatch); every other kind is at 1
SUPPORTED_VERSIONS: Final = frozenset({1, RAW_BATCH_VERSION})

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

FLAG_BASE64: Final = 1  # the line is not valid UTF-8; `text` holds base64 of the raw bytes
FLAG_TRUNCATED: Final = 2  # the collector cut the line at max_line_bytes
FLAG_BAD_TIME: Final = 4  # the format's timestamp (CRI) did not parse; the collection time stands in
FLAG_BAD_PREFIX: Final = 8  # the line lacked its file format's CRI prefix; kept whole, prefix and all

# Raw line entry: [position, text, stream, source_time_ns, flags]
RawLine = list[Any]
# Parsed line entry: [src_index, stream_id, position, event_time_ns, trace_id, level, service, text, stream]
P_SRC, P_SID, P_POS, P_TIME, P_TRACE, P_LEVEL, P_SERVICE, P_TEXT, P_STREAM = range(9)
# The normalized levels a parsed line carries (P_LEVEL), lowest first; "" when the line had none.
LEVEL_NAMES: Final = ("trace", "debug", "info", "warn", "error", "fatal")
LEVEL_RANK: Final = {name: rank for rank, name in enumerate(LEVEL_NAMES)}
# Where stores and the query API look for a line's message text, first found wins.
MESSAGE_FIELDS: Final = ("msg", "message", "log")


def stream_digest(stream_id: str) -> str:
    """Short fixed-size digest of a stream id (16 hex characters)."""
    return blake2b(stream_id.encode(), digest_size=8).hexdigest()


def line_id(stream_id: str, position: int, digest: str | None = None) -> str:
    """Stable id of a line: `<stream digest>-<position in hex>`.

    The same source position always yields the same id, so writes keyed by it are idempotent;
    pass the stream's `digest` when computing many ids of one stream.
    """
    return f"{digest or stream_digest(stream_id)}-{position:x}"


def parse_line_id(lid: str) -> tuple[str, int]:
    """(stream digest, position) of a line id made by `line_id`; ValueError for anything else."""
    digest, sep, position = lid.rpartition("-")
    if not sep or not digest:
        raise ValueError(f"not a Logweave line id: {lid!r}")
    return digest, int(position, 16)


def trace_partition(trace_id: str, partitions: int) -> int:
    """Partition of a trace: a stable hash so every line of a trace meets in one partition."""
    return zlib.crc32(trace_id.encode()) % partitions


def raw_line_bytes(entry: RawLine) -> bytes:
    """The original bytes of a raw line entry (undoing the base64 used for invalid UTF-8)."""
    text: str = entry[1]
    return base64.b64decode(text) if entry[4] & FLAG_BASE64 else text.encode()


def make_raw_line(position: int, data: bytes, stream: str = "", source_time_ns: int = 0, flags: int = 0) -> RawLine:
    """Build a raw line entry from bytes, base64-encoding lines that are not valid UTF-8."""
    try:
        return [position, data.decode(), stream, source_time_ns, flags]
    except UnicodeDecodeError:
        return [position, base64.b64encode(data).decode(), stream, source_time_ns, flags | FLAG_BASE64]


@dataclass(slots=True)
class WireLines:
    """Raw lines already in their wire encoding, so a record is a join of byte strings.

    Each piece is the entries of some lines as orjson writes them, joined by commas: orjson's
    encoding of their list without its brackets (`wire_lines`, the reference). The file collector's
    C scan (collectors/files/_filescan.c) writes its common CRI lines this way, with no Python object
    per line, and a record then costs no encoding of its lines."""

    pieces: list[bytes]
    count: int  # lines
    size: int  # their texts' lengths in characters, summed: what chunk and batch budgets count

    def extend(self, other: WireLines) -> None:
        self.pieces.extend(other.pieces)
        self.count += other.count
        self.size += other.size

    def decode(self) -> list[RawLine]:
        """The entries themselves (splitting an oversize record, or a mixed segment's list form)."""
        lines: list[RawLine] = orjson.loads(b"[%s]" % b",".join(self.pieces))
        return lines


_HEADS_KEPT = 65536
_segment_heads: dict[int, tuple[dict[str, Any], str, bytes]] = {}  # id(source) -> (source, stream id, head)


def segment_head(source: dict[str, Any], stream_id: str) -> bytes:
    """`{"src":<source>,"sid":<stream id>,"lines":[` as orjson writes it, remembered for the very source
    object: a file's segment head is written into every record its lines go into. Only for sources
    never changed once their lines are published (a file collector's: built once per file), as those
    with encoded lines are."""
    hit = _segment_heads.get(id(source))
    if hit is not None and hit[0] is source and hit[1] == stream_id:
        return hit[2]
    if len(_segment_heads) >= _HEADS_KEPT:
        _segment_heads.clear()
    head = b'{"src":%s,"sid":%s,"lines":[' % (orjson.dumps(source), orjson.dumps(stream_id))
    _segment_heads[id(source)] = (source, stream_id, head)
    return head


def wire_lines(lines: list[RawLine]) -> WireLines:
    """`lines` in their wire encoding (the reference of the C scan's)."""
    return WireLines([orjson.dumps(lines)[1:-1]] if lines else [], len(lines), sum([len(line[1]) for line in lines]))


@dataclass(slots=True)
class RawChunk:
    """A batch of lines from one source stream (one file generation, one container instance).

    Its lines are `lines`, or, when `wire` is set, those (`lines` is then empty): already encoded."""

    source: dict[str, Any]
    stream_id: str
    collected_ns: int
    lines: list[RawLine] = field(default_factory=list)
    wire: WireLines | None = None

    @property
    def line_count(self) -> int:
        return self.wire.count if self.wire is not None else len(self.lines)

    def text_size(self) -> int:
        """Its lines' texts' lengths in characters, summed."""
        return self.wire.size if self.wire is not None else sum([len(line[1]) for line in self.lines])

    def entries(self) -> list[RawLine]:
        """Its lines as entries, whichever form it holds them in."""
        return self.wire.decode() if self.wire is not None else self.lines

    def encode(self) -> bytes:
        if self.wire is not None:
            return b'{"v":%d,"t":"raw","src":%s,"sid":%s,"ct":%d,"lines":[%s]}' % (
                SCHEMA_VERSION, orjson.dumps(self.source), orjson.dumps(self.stream_id), self.collected_ns,
                b",".join(self.wire.pieces))
        return orjson.dumps(
            {"v": SCHEMA_VERSION, "t": "raw", "src": self.source, "sid": self.stream_id,
             "ct": self.collected_ns, "lines": self.lines}
        )

    @classmethod
    def decode(cls, data: bytes) -> RawChunk:
        """A version 1 record (one stream); `decode_raw_chunks` reads every version."""
        chunks = decode_raw_chunks(data)
        if len(chunks) != 1:
            raise ChunkFormatError(f"raw record holds {len(chunks)} streams; read it with decode_raw_chunks")
        return chunks[0]


@dataclass(slots=True)
class RawBatch:
    """Lines of many source streams bound for one partition, sent as one `logs.raw` record (version 2).

    Each segment is one stream's lines, in position order; a stream appears in at most one segment.
    Per-record cost is what caps the pipeline, so collectors batch by time and volume across all
    their streams instead of sending each stream's few new lines on their own.
    """

    collected_ns: int
    segments: list[RawChunk] = field(default_factory=list)

    @property
    def line_count(self) -> int:
        return sum(seg.line_count for seg in self.segments)

    def encode(self) -> bytes:
        """orjson's encoding of the record; segments holding `wire` lines are joined in, byte for byte
        what orjson writes for their entries."""
        segments = self.segments
        if not any(seg.wire is not None for seg in segments):
            return orjson.dumps(
                {"v": RAW_BATCH_VERSION, "t": "raw", "ct": self.collected_ns,
                 "segs": [{"src": seg.source, "sid": seg.stream_id, "lines": seg.lines} for seg in segments]}
            )
        # One join of every part: joining each segment and then the segments copied every line three times
        # (~1 us a segment; a live node's record carries a segment per file written since the last pass).
        dumps = orjson.dumps
        parts = [b'{"v":%d,"t":"raw","ct":%d,"segs":[' % (RAW_BATCH_VERSION, self.collected_ns)]
        add = parts.append
        for seg in segments:
            if seg.wire is not None:
                add(segment_head(seg.source, seg.stream_id))
                add(b",".join(seg.wire.pieces))
                add(b"]},")
            else:
                add(b'{"src":%s,"sid":%s,"lines":[%s]},' % (dumps(seg.source), dumps(seg.stream_id),
                                                          dumps(seg.lines)[1:-1]))
        parts[-1] = parts[-1][:-1] + b"]}"  # the last segment's comma closes the record instead
        return b"".join(parts)


def decode_raw_chunks(data: bytes) -> list[RawChunk]:
    """The per-stream chunks of a `logs.raw` record of any supported version (one for version 1).

    ChunkFormatError for anything that is not a well-formed raw chunk."""
    return raw_chunks_of(decompressed(data))


def raw_chunks_of(payload: bytes) -> list[RawChunk]:
    """`decode_raw_chunks` of a record already decompressed (`decompressed`)."""
    doc = _load_payload(payload, "raw")
    if doc["v"] == SCHEMA_VERSION:
        return [_raw_chunk(doc, doc)]
    segments, collected = doc.get("segs"), doc.get("ct")
    if type(segments) is not list:
        raise ChunkFormatError("raw chunk (version 2) lacks its list of segments `segs`")
    chunks = []
    for segment in segments:
        if type(segment) is not dict:
            raise ChunkFormatError("raw chunk (version 2) has a segment that is not an object")
        chunks.append(_raw_chunk(segment, doc))
    if type(collected) is not int:
        raise ChunkFormatError("raw chunk (version 2) lacks a 64-bit integer `ct`")
    return chunks


def _raw_chunk(segment: dict[str, Any], doc: dict[str, Any]) -> RawChunk:
    try:
        chunk = RawChunk(segment["src"], segment["sid"], doc["ct"], segment["lines"])
    except KeyError as exc:
        raise ChunkFormatError(f"raw chunk lacks field {exc}") from None
    if type(chunk.source) is not dict or type(chunk.stream_id) is not str or type(chunk.lines) is not list \
            or type(chunk.collected_ns) is not int or not _INT64_MIN <= chunk.collected_ns <= _INT64_MAX:
        raise ChunkFormatError("raw chunk fields of the wrong type: src must be an object, sid a string, "
                               "ct a 64-bit integer and lines a list")
    return chunk


@dataclass(slots=True)
class ParsedChunk:
    """Parsed lines bound for one partition; sources are listed once and referenced by index."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    lines: list[list[Any]] = field(default_factory=list)
    ordered: bool = True  # False: lines of a stream may be out of position order (released held lines)
    collected_ns: int | None = None  # the raw chunk's collection time: which live rules version routes it

    def encode(self) -> bytes:
        doc = {"v": SCHEMA_VERSION, "t": "parsed", "srcs": self.sources, "lines": self.lines}
        if not self.ordered:
            doc["unordered"] = True
        if self.collected_ns is not None:
            doc["ct"] = self.collected_ns
        return orjson.dumps(doc)

    @property
    def line_count(self) -> int:
        return len(self.lines)

    @classmethod
    def decode(cls, data: bytes) -> ParsedChunk:
        return cls.from_payload(decompressed(data))

    @classmethod
    def from_payload(cls, payload: bytes) -> ParsedChunk:
        """`decode` of a record already decompressed (`decompressed`)."""
        doc = _load_payload(payload, "parsed")
        try:
            collected = doc.get("ct")
            chunk = cls(doc["srcs"], doc["lines"], not doc.get("unordered", False),
                        collected if type(collected) is int else None)
        except KeyError as exc:
            raise ChunkFormatError(f"parsed chunk lacks field {exc}") from None
        if type(chunk.sources) is not list or type(chunk.lines) is not list:
            raise ChunkFormatError("parsed chunk fields of the wrong type: srcs and lines must be lists")
        return chunk


@dataclass(slots=True)
class DeadLetter:
    """A line that could not be delivered, with a machine-readable reason and where it came from."""

    reason: str
    detail: str
    stage: str
    text: str
    base64: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    stream_id: str = ""
    position: int = -1

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "stage": self.stage, "line": self.text,
                "b64": self.base64, "src": self.source, "sid": self.stream_id, "pos": self.position}


def encode_dead_letters(items: list[DeadLetter]) -> bytes:
    return orjson.dumps({"v": SCHEMA_VERSION, "t": "dead", "items": [d.as_dict() for d in items]})


def decode_dead_letters(data: bytes) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = _load(data, "dead")["items"]
    return items


def encode_closed_traces(summaries: list[dict[str, Any]]) -> bytes:
    """One `traces.closed` record carrying the summaries of many traces closed together."""
    return join_closed_traces([orjson.dumps(item) for item in summaries])


def join_closed_traces(encoded_summaries: list[bytes]) -> bytes:
    """`encode_closed_traces` for summaries already encoded as JSON objects."""
    return b'{"v":%d,"t":"closed","traces":[%s]}' % (SCHEMA_VERSION, b",".join(encoded_summaries))


def decode_closed_traces(data: bytes) -> list[dict[str, Any]]:
    traces: list[dict[str, Any]] = _load(data, "closed")["traces"]
    return traces


def _load(data: bytes, kind: str) -> dict[str, Any]:
    return _load_payload(decompressed(data), kind)


def decompressed(data: bytes) -> bytes:
    """A record's chunk as JSON bytes; ChunkFormatError for a corrupt compressed payload."""
    try:
        return decompress(data)
    except Exception as exc:  # lz4 and zstd raise their own types for a corrupt frame
        raise ChunkFormatError(f"not a Logweave chunk (corrupt compressed payload: {exc})") from None


def _load_payload(payload: bytes, kind: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ChunkFormatError(f"not a Logweave chunk (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise ChunkFormatError("not a Logweave chunk (not a JSON object)")
    version = doc.get("v")
    if version not in SUPPORTED_VERSIONS:
        raise ChunkFormatError(
            f"chunk schema version {version!r} is not supported by this release "
            f"(supported: {sorted(SUPPORTED_VERSIONS)}); upgrade Logweave to replay it"
        )
    if doc.get("t") != kind:
        raise ChunkFormatError(f"expected a {kind!r} chunk, got {doc.get('t')!r}")
    if version != SCHEMA_VERSION and kind != "raw":
        raise ChunkFormatError(f"a {kind!r} chunk of schema version {version} is not supported by this release "
                               f"(supported: [{SCHEMA_VERSION}]); upgrade Logweave to replay it")
    return doc


def splice_metadata(text: str, reserved_key: str, metadata: dict[str, Any] | str) -> bytes:
    """Return the JSON object `text` with `metadata` added under `reserved_key`, without re-parsing.

    `text` is a JSON object already validated by the parse stage (stripped of surrounding
    whitespace); `metadata` may be given already serialized. If the object already uses the
    reserved key, the object is re-serialized so the key appears once, holding Logweave's metadata.
    """
    meta = metadata if isinstance(metadata, str) else orjson.dumps(metadata).decode()
    quoted = f'"{reserved_key}"'
    if quoted in text:
        doc = orjson.loads(text)
        doc[reserved_key] = orjson.loads(meta)
        return orjson.dumps(doc)
    body = text[:-1].rstrip()
    separator = "" if body.endswith("{") else ","
    return f"{body}{separator}{quoted}:{meta}}}".encode()
