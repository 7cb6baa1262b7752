"""A large logs.parsed record read for its trace folds alone, its lines left undecoded.

The group stage forwards a large ordered chunk to the sinks as it received it when every line goes to
every sink and none is a replay (agents/grouper.py). Then it needs of the lines only their trace folds,
their count, and each stream's first and last position (to check them against the stream's mark): it
never needs a line as a Python list. Decoding the record with orjson made one list, two ints and a str
per line, ~0.45 us per ~250-byte line; reading the folds from the bytes in C (tables/_tracefold.c,
fold_raw) makes nothing per line but the sampled texts.

Anything else takes the decoded lines, decoded on first use (`lines`): a small chunk (merged with its
neighbours), an unordered one, rules that route line by line, a stream whose mark says part of the
chunk was applied before, or a record the C reader is not sure of.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from agents.parsed_layout import parsed_layout
from core.models import ParsedChunk, decompressed
from tables.trace_state import EncodedFolds, fold_encoded

# Read from the bytes from this size of decompressed record on (64 KiB: ~250 lines of ~250 bytes); smaller
# records are mostly merged with their neighbours (agents/group.py, MERGE_BELOW), which needs their lines.
FOLD_ENCODED_BYTES = 64 * 1024


@dataclass(slots=True)
class FoldedChunk:
    """An ordered logs.parsed record: its sources, collection time and folds; its lines on demand."""

    payload: bytes  # the record decompressed
    sources: list[dict[str, Any]]
    encoded: EncodedFolds
    collected_ns: int | None
    ordered: ClassVar[bool] = True  # an unordered record is decoded
    _decoded: ParsedChunk | None = field(default=None, repr=False)

    @property
    def line_count(self) -> int:
        return self.encoded.line_count

    @property
    def lines(self) -> list[list[Any]]:
        """The lines decoded, for every use but the forwarded-as-received one."""
        if self._decoded is None:
            self._decoded = ParsedChunk.from_payload(self.payload)
        return self._decoded.lines


def read_parsed(value: bytes, sample_lines: int) -> ParsedChunk | FoldedChunk:
    """A logs.parsed record as the group stage holds it: folded from its bytes when large, ordered and of
    orjson's exact form, else decoded (ChunkFormatError for a record that is no parsed chunk)."""
    payload = decompressed(value)
    layout = parsed_layout(payload) if len(payload) >= FOLD_ENCODED_BYTES else None
    encoded = fold_encoded(payload, layout.lines_start, layout.lines_end, len(layout.sources), sample_lines) \
        if layout is not None and layout.ordered else None
    if layout is None or encoded is None:
        return ParsedChunk.from_payload(payload)
    return FoldedChunk(payload, layout.sources, encoded, layout.collected_ns)
