"""A read block of whole kubelet log lines to raw line entries, in one pass.

With `timestamps=true` every line is `<RFC3339Nano, UTC> <content>\\n`. Most socket reads of a followed
log are dozens of such lines, and the per-line Python between the HTTP stream and the chunk was most
of the collector's own CPU: a regex match, three bytes objects and a tuple per line, then a method
call for the timestamp, one for the position and a decode. Here the block is decoded once, one
regular-expression pass yields the three fields as strings, and timestamps and positions are computed
inline with the cursor's rules (positions.py), whose state is read once and written back once.

`take_block` runs the C scan (collectors/pods/_podscan.c) when it is built and not turned off
(core/native.py), else `scan_block` here, its reference: the C scan answers only when it gives the
reference's result (tests/unit/collectors/pods/test_podscan.py). Both return None when the block is not
all kubelet lines or not UTF-8; the caller then takes the careful per-line path, which gives the same
entries for what they accept (tests/unit/collectors/pods/test_blockscan.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from collectors.pods.positions import StreamCursor
from collectors.pods.timestamps import SCALE, TimestampError, TimestampParser
from core.models import RawLine, WireLines
from core.native import native_module

# a whole line as the kubelet writes it with timestamps=true: RFC3339Nano in UTC, one space, the content
KUBELET_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z ([^\n]*)\n", re.MULTILINE | re.ASCII)
_PER_US = 1000
BlockLines = tuple[list[RawLine], int, int]  # entries not published before, their content bytes, duplicates


def block_taker(parser: TimestampParser, cursor: StreamCursor) -> Callable[[bytes], BlockLines | None]:
    """`take_block` for one stream, with the choice of C or Python made once: a followed log is read in
    thousands of blocks, and finding the extension module again for each one cost as much as a short
    block's scan."""
    fast = native_module("pod_lines")
    if fast is None:
        return functools.partial(scan_block, parser=parser, cursor=cursor)
    return functools.partial(take_block, parser=parser, cursor=cursor, fast=fast)


# lines not published before, their content bytes, duplicates, (position, ts) of the last
WireBlock = tuple[WireLines, int, int, tuple[int, int]]


def wire_taker(cursor: StreamCursor) -> Callable[[bytes], WireBlock | None] | None:
    """For one stream: a block of whole kubelet lines straight into their wire encoding, in C (`scan_wire`),
    or None when the C scan is not built (the stream then takes entries through `block_taker`). The
    result is what `wire_lines` makes of the reference's entries (tests/unit/collectors/pods/test_podscan.py);
    a block the C does not answer for goes through `block_taker` too."""
    fast = native_module("pod_lines")
    if fast is None:
        return None
    return functools.partial(take_wire, cursor=cursor, scan=fast.scan_wire)


def take_wire(block: bytes, cursor: StreamCursor, scan: Callable[..., Any]) -> WireBlock | None:
    try:
        out = scan(block, *cursor.scan_state())
    except OverflowError:  # a cursor past 64-bit integers: the reference has no such limit
        return None
    return None if out is None else _advanced(out, cursor)


ChunkedWire = tuple[WireBlock, int]  # a body's lines and the chunked decoder's state after them


def chunked_wire_taker(cursor: StreamCursor) -> Callable[[bytes, int, int], ChunkedWire | None] | None:
    """For one stream: a tick's raw chunked bytes (`data`, from the decoder state `left`) dechunked and
    scanned into their wire encoding in one C call (`dechunk_scan`), when the body is at most `max_body`
    bytes of whole lines; None when the C scan is not built. The call gives None, nothing changed, for
    anything else: the bytes then go through BodyDecoder, the line splitter and `wire_taker` as usual,
    which give the same lines (tests/unit/collectors/pods/test_podscan.py)."""
    fast = native_module("pod_lines")
    if fast is None:
        return None
    return functools.partial(take_chunked_wire, cursor=cursor, scan=fast.dechunk_scan)


def take_chunked_wire(data: bytes, left: int, max_body: int, cursor: StreamCursor,
                      scan: Callable[..., Any]) -> ChunkedWire | None:
    try:
        out = scan(data, left, *cursor.scan_state(), max_body)
    except OverflowError:  # a cursor past 64-bit integers: the reference has no such limit
        return None
    return None if out is None else (_advanced(out[0], cursor), out[1])


def _advanced(out: tuple[Any, ...], cursor: StreamCursor) -> WireBlock:
    """A wire scan's result as a WireBlock, the cursor moved past its lines."""
    data, count, chars, size, duplicates, clock, index, last_position, last_ts = out
    cursor.advance(clock, index, last_position, last_ts)
    return WireLines([data] if count else [], count, chars), size, duplicates, (last_position, last_ts or 0)


def take_block(block: bytes, parser: TimestampParser, cursor: StreamCursor,
               fast: ModuleType | None = None) -> BlockLines | None:
    """`scan_block`, in C when it can (`fast`: the extension module, when the caller looked it up)."""
    if fast is None:
        fast = native_module("pod_lines")
    if fast is not None:
        try:
            out = fast.scan(block, *cursor.scan_state())
        except OverflowError:  # a cursor past 64-bit integers: the reference has no such limit
            out = None
        if out is not None:
            entries, size, duplicates, clock, index, last_position, last_ts = out
            cursor.advance(clock, index, last_position, last_ts)
            return entries, size, duplicates
    return scan_block(block, parser, cursor)


def scan_block(block: bytes, parser: TimestampParser, cursor: StreamCursor) -> BlockLines | None:
    """(entries not published before, their content bytes, duplicates dropped) of a block of whole
    lines ending with a newline, advancing the cursor; None (cursor untouched) if the block is not
    all kubelet lines in UTF-8."""
    try:
        text = block.decode()
    except UnicodeDecodeError:
        return None
    rows = KUBELET_LINE.findall(text)
    if len(rows) != text.count("\n"):
        return None
    second = parser.second_ns
    scale = SCALE
    head_seen, base = "", 0
    clock, index, last_position, skip = cursor.scan_state()
    last_ts: int | None = None
    entries: list[RawLine] = []
    append = entries.append
    duplicates = chars = 0
    try:
        for head, frac, content in rows:
            if head != head_seen:
                base = second(head.encode())
                head_seen = head
            ts = base + int(frac) * scale[len(frac)] if frac else base
            us = ts // 1000
            if us > clock:
                clock, index = us, 0
            else:
                index += 1
                if index >= _PER_US:  # more than 1000 lines in one microsecond: borrow the next
                    clock += 1
                    index = 0
            position = clock * _PER_US + index
            if position <= last_position or ts < skip:
                duplicates += 1
                continue
            last_position, last_ts = position, ts
            chars += len(content)
            append([position, content, "", ts, 0])
    except TimestampError:  # a date that is no date: the careful path keeps the line in order
        return None
    cursor.advance(clock, index, last_position, last_ts)
    if len(block) == len(text):  # ASCII: one byte per character
        return entries, chars, duplicates
    size = chars + len(block) - len(text) if not duplicates else sum(len(e[1].encode()) for e in entries)
    return entries, size, duplicates
