"""The pod collector's C block scan (collectors/pods/_podscan.c) against its Python reference (blockscan.py).

Where the C answers, it gives the reference's entries, byte count, duplicates and cursor state; where it
does not (None), the reference decides. Lines as the kubelet writes them must be answered in C. The
one-call tick (`dechunk_scan`) is held to the steps it stands for: the body decoder, the line splitter and
the wire scan, over any cut of the response's bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.pods.blockscan import block_taker, scan_block, take_block, take_chunked_wire, take_wire
from collectors.pods.lines import LineSplitter
from collectors.pods.polled_log import BodyDecoder, LogStreamBroken
from collectors.pods.positions import StreamCursor
from collectors.pods.timestamps import TimestampParser, format_rfc3339nano
from core.models import wire_lines
from core.native import native_module

fast = pytest.importorskip("collectors.pods._podscan", reason="C extension not built (pure-Python install)")
if native_module("pod_lines") is None:
    pytest.skip("LOGWEAVE_PURE=1: the pod collector runs its Python scan", allow_module_level=True)
SOME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z

good_stamps = st.one_of(
    st.integers(NOW - 3_000_000_000, NOW + 3_000_000_000).map(lambda ns: format_rfc3339nano(ns).encode()),
    st.sampled_from([b"2024-02-29T23:59:59.5Z", b"1970-01-01T00:00:00Z", b"2261-12-31T23:59:59.999999999Z",
                     b"2026-01-01T00:00:00.000000001Z"]))
stamps = st.one_of(
    good_stamps,
    st.sampled_from([b"2024-02-29T23:59:59.5Z", b"2023-02-29T00:00:00Z", b"2026-01-01T24:00:00Z",
                     b"1969-12-31T23:59:59.999Z", b"2262-04-11T23:47:16.854775807Z", b"9999-12-31T23:59:59.999999999Z",
                     b"2026-01-01T00:00:00.Z", b"2026-01-01T00:00:00.1234567890Z", b"2026-01-01 00:00:00Z",
                     b"2026-01-01T00:00:00+01:00", b"2026-1-01T00:00:00Z", b"2026-01-01T00:00:60Z", b""]),
)
contents = st.one_of(st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                             max_size=40).map(str.encode),
                     st.binary(max_size=12).filter(lambda b: b"\n" not in b))
lines = st.tuples(stamps, st.sampled_from([b" ", b"", b"  "]), contents).map(lambda t: t[0] + t[1] + t[2])
texts = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)), max_size=40).map(str.encode)
kubelet_lines = st.tuples(good_stamps, texts).map(lambda t: t[0] + b" " + t[1])
blocks = st.one_of(st.lists(kubelet_lines, min_size=1, max_size=30), st.lists(lines, min_size=1, max_size=30)).map(
    lambda ls: b"".join(line + b"\n" for line in ls))


def cursor_at(last_position: int, skip_before_ns: int) -> StreamCursor:
    cursor = StreamCursor(None, last_position)
    cursor.skip_before_ns = skip_before_ns
    return cursor


def state(cursor: StreamCursor) -> tuple[object, ...]:
    return (*cursor.scan_state(), cursor.last_ts_ns)


@SOME
@given(blocks, st.sampled_from([-1, NOW // 1000, (NOW + 10**9) // 1000]),
       st.sampled_from([0, NOW, NOW + 2 * 10**9]), st.integers(1, 3))
def test_the_c_scan_gives_the_references_answer(block: bytes, last_position: int, skip: int, passes: int) -> None:
    by_c, by_python = cursor_at(last_position, skip), cursor_at(last_position, skip)
    for _ in range(passes):  # later passes replay the block (a reconnect): duplicates
        by_c.begin_connection()
        by_python.begin_connection()
        before = state(by_c)
        got = fast.scan(block, *by_c.scan_state())
        if got is None:
            assert state(by_c) == before
            return  # the reference decides; test_streamer_block holds it to the line-by-line path
        entries, size, duplicates, clock, index, position, last_ts = got
        by_c.advance(clock, index, position, last_ts)
        assert (entries, size, duplicates) == scan_block(block, TimestampParser(), by_python)
        assert state(by_c) == state(by_python)


@SOME
@given(blocks, st.sampled_from([-1, NOW // 1000, (NOW + 10**9) // 1000]),
       st.sampled_from([0, NOW, NOW + 2 * 10**9]), st.integers(1, 3))
def test_the_wire_scan_writes_what_orjson_writes_for_the_references_entries(
        block: bytes, last_position: int, skip: int, passes: int) -> None:
    """scan_wire: None exactly when scan is; else the reference's entries as orjson encodes them (joined by
    commas), their count, characters, bytes, the duplicates and the cursor state."""
    by_wire, by_python = cursor_at(last_position, skip), cursor_at(last_position, skip)
    for _ in range(passes):
        by_wire.begin_connection()
        by_python.begin_connection()
        before = state(by_wire)
        assert (fast.scan_wire(block, *by_wire.scan_state()) is None) == (fast.scan(block, *before[:4]) is None)
        wired = take_wire(block, by_wire, fast.scan_wire)
        if wired is None:
            assert state(by_wire) == before
            return
        wire, size, duplicates, last = wired
        reference = scan_block(block, TimestampParser(), by_python)
        assert reference is not None
        entries, reference_size, reference_duplicates = reference
        assert b",".join(wire.pieces) == wire_lines(entries).pieces[0] if entries else not wire.pieces
        assert (wire.count, wire.size, size, duplicates) == (len(entries), sum(len(e[1]) for e in entries),
                                                             reference_size, reference_duplicates)
        assert state(by_wire) == state(by_python)
        if entries:
            assert last == (entries[-1][0], entries[-1][3])


def test_kubelet_lines_are_answered_in_c() -> None:
    pad = "x" * 130
    block = b"".join(f'{format_rfc3339nano(NOW + n * 1000 + n % 3)} {{"n":{n},"p":"{pad}","u":"é"}}\n'.encode()
                     for n in range(200))
    block += b"2026-01-01T00:00:01Z a whole second\n2026-01-01T00:00:01.5Z \n"
    got = fast.scan(block, *StreamCursor().scan_state())
    assert got is not None
    reference = scan_block(block, TimestampParser(), StreamCursor())
    assert reference is not None and got[:3] == reference
    assert len(got[0]) == 202


def test_take_block_runs_the_c_scan_and_advances_the_cursor() -> None:
    cursor = StreamCursor()
    block = b"2026-01-01T00:00:00.000001Z a\n2026-01-01T00:00:00.000001Z b\n"
    taken = take_block(block, TimestampParser(), cursor)
    assert taken is not None
    entries, size, duplicates = taken
    base = 1_767_225_600_000_001
    assert [e[0] for e in entries] == [base * 1000, base * 1000 + 1] and size == 2 and duplicates == 0
    assert cursor.last_position == base * 1000 + 1 and cursor.last_ts_ns == base * 1000
    assert take_block(b"not a kubelet line\n", TimestampParser(), cursor) is None


def test_block_taker_scans_successive_blocks_as_the_reference_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream's taker (chosen once: C here) and one chosen under LOGWEAVE_PURE=1 (the Python reference)
    give the same entries and cursor over a stream's successive blocks, replays and a refused block included."""
    blocks = [b"".join(f"{format_rfc3339nano(NOW + n * 700)} line {n}\n".encode() for n in range(start, start + 40))
              for start in (0, 40, 20, 80)]  # the third replays lines already taken: duplicates
    blocks.insert(2, b"no stamp here\n")
    c_cursor, py_cursor = StreamCursor(), StreamCursor()
    in_c = block_taker(TimestampParser(), c_cursor)
    monkeypatch.setenv("LOGWEAVE_PURE", "1")
    in_python = block_taker(TimestampParser(), py_cursor)
    monkeypatch.delenv("LOGWEAVE_PURE")
    results = []
    for n, block in enumerate(blocks):
        if n == 3:  # a reconnect replays from the last line's microsecond on
            c_cursor.begin_connection()
            py_cursor.begin_connection()
        results.append(in_c(block))
        assert results[-1] == in_python(block)
        assert c_cursor.scan_state() == py_cursor.scan_state() and c_cursor.last_ts_ns == py_cursor.last_ts_ns
    assert results[2] is None and results[3] == ([], 0, 40) and results[4] is not None and results[4][0]


def chunk_body(body: bytes, sizes: list[int] | None) -> list[bytes]:
    """`body` as the chunks of an HTTP/1.1 chunked body, of the sizes given (cycled) or a line each (as the
    API server relays a pod's writes), without the last chunk."""
    pieces = body.splitlines(keepends=True) if sizes is None else []
    at, n = 0, 0
    while sizes is not None and at < len(body):
        pieces.append(body[at:at + sizes[n % len(sizes)]])
        at, n = at + sizes[n % len(sizes)], n + 1
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces]


def decoder_state(decoder: BodyDecoder, splitter: LineSplitter, cursor: StreamCursor) -> tuple[object, ...]:
    return decoder._left, bytes(decoder._buffer), decoder.done, splitter.remainder, state(cursor)


@SOME
@given(st.one_of(st.lists(kubelet_lines, min_size=1, max_size=40).map(lambda ls: b"".join(x + b"\n" for x in ls)),
                 blocks),
       st.one_of(st.none(), st.lists(st.integers(1, 400), min_size=1, max_size=5)),
       st.lists(st.integers(0, 600), max_size=12), st.booleans(), st.sampled_from([1 << 20, 1 << 20, 300]),
       st.one_of(st.none(), st.none(), st.tuples(st.integers(0, 10**6), st.sampled_from(b"0aZ\r\n;x\xff"))),
       st.sampled_from([-1, NOW // 1000]))
def test_the_one_call_tick_gives_what_dechunking_splitting_and_the_wire_scan_give(
        body: bytes, sizes: list[int] | None, cuts: list[int], at_chunk_ends: bool, max_body: int,
        change: tuple[int, int] | None, last_position: int) -> None:
    """A response's bytes (a chunk per line, as the API server sends them, or of any size) cut into reads
    between chunks or anywhere (mid-line, mid-size-line, mid-CRLF), sometimes with a byte changed: where
    `dechunk_scan` answers a read, the decoder, the splitter and the wire scan, run on the same read from the
    same state, give the same lines, counts and cursor, and leave the decoder where it said (the splitter
    holding nothing); where it declines, nothing changed. The last chunk is never its."""
    chunks = chunk_body(body, sizes)
    wire = bytearray(b"".join(chunks) + b"0\r\n\r\n")
    if change is not None:
        wire[change[0] % len(wire)] = change[1]
    chunk_ends = [sum(len(c) for c in chunks[:n + 1]) for n in range(len(chunks))]
    ends = sorted({chunk_ends[cut % len(chunk_ends)] if at_chunk_ends else cut % len(wire) for cut in cuts}
                  | {len(wire)})
    reads = [bytes(wire[start:end]) for start, end in zip([0, *ends], ends, strict=False) if end > start]
    decoder = BodyDecoder({"transfer-encoding": "chunked"})
    splitter, cursor = LineSplitter(1 << 20), cursor_at(last_position, 0)
    for data in reads:
        before = decoder_state(decoder, splitter, cursor)
        left = decoder.chunk_state
        taken = None
        if left is not None and splitter.holds_nothing:
            taken = take_chunked_wire(data, left, max_body, cursor, fast.dechunk_scan)
        if taken is None:
            assert decoder_state(decoder, splitter, cursor) == before
        else:  # the steps, from the same state (take_chunked_wire moved the cursor, not the decoder)
            moved = state(cursor)
            cursor = cursor_at(last_position, 0)
            cursor._clock_us, cursor._index, cursor.last_position, cursor.skip_before_ns = before[4][:4]
            cursor.last_ts_ns = before[4][4]
            body = decoder.feed(data)
            lines, block = splitter.feed_block(body)
            assert not lines and block == body and 0 < len(body) <= max_body
            assert take_wire(block, cursor, fast.scan_wire) == taken[0]
            assert (decoder._left, bytes(decoder._buffer), decoder.done) == (taken[1], b"", False)
            assert state(cursor) == moved and splitter.holds_nothing
            continue
        try:
            lines, block = splitter.feed_block(decoder.feed(data))
        except LogStreamBroken:
            return
        if block and not lines and take_wire(block, cursor, fast.scan_wire) is None:
            return  # the careful path's business (test_streamer_block)


def test_the_one_call_tick_answers_the_usual_reads_and_declines_the_others() -> None:
    """A tick's whole kubelet lines, a chunk each, are answered from any decoder state a read can end in
    between chunks; a line cut off, the last chunk, bytes past max_body or a malformed size are not."""
    lines = [f"{format_rfc3339nano(NOW + n * 1000)} {{\"n\":{n},\"msg\":\"q\\\"é\"}}\n".encode() for n in range(8)]
    data = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines)
    cursor = StreamCursor()
    taken = take_chunked_wire(data, 0, 1 << 16, cursor, fast.dechunk_scan)
    assert taken is not None and taken[0][0].count == 8 and taken[1] == 0  # all used: a size line next
    assert take_chunked_wire(data[:-2], 0, 1 << 16, StreamCursor(), fast.dechunk_scan)[1] == -1  # CRLF next
    assert take_chunked_wire(data[2:], 0x3f, 1 << 16, StreamCursor(), fast.dechunk_scan) is None  # a cut size line
    for declined in (data[:-5], data + b"0\r\n\r\n", data.replace(b"\r\n", b"\n", 1)):
        assert take_chunked_wire(declined, 0, 1 << 16, StreamCursor(), fast.dechunk_scan) is None
    assert take_chunked_wire(data, 0, len(b"".join(lines)) - 1, StreamCursor(), fast.dechunk_scan) is None
