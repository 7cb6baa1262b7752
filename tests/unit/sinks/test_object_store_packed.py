"""The object-store sinks' packed path (sinks/object_store.py, `_write_packed`) writes what the line path does.

Differential: the same lines go to two sinks over two in-memory stores, once as SinkLine batches (the
reference: `ndjson`, `unseen`, `split_by_event_time`) and once packed (`pack_sink_lines`, the form the
drain hands, with the C selection or the Python one); every object key, every object's bytes after
gunzip and every state object must be equal, batch after batch. Generated batches mix streams, records
split inside, replays of earlier batches and upstream re-sends (a stream position again under a later
offset), so positions and marks skip lines on both paths. The store here is a dict: what is under test
is the sink's choice of bytes and keys; the S3 and GCS integration tests run the real clients.
"""

from __future__ import annotations

import asyncio
import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.settings import S3SinkSettings
from sinks.base import NeedsLines, SinkBatch, SinkLine
from sinks.object_store import ObjectStoreSink, StateConflict, ndjson
from sinks.packed import native_select, native_times_within, pack_sink_lines

BASE_NS = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z


class MemoryStore(ObjectStoreSink):
    """An object store in a dict, with versions for the conditional state write."""

    name = "memory"
    store_errors = ()

    def __init__(self, native: bool) -> None:
        super().__init__(S3SinkSettings(bucket="b", prefix="lw", max_future_skew=3600))
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, int] = {}
        if not native:
            self._select = self._times = None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def _put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    async def _put_state(self, key: str, body: bytes, version: str | None) -> str | None:
        if (str(self.versions[key]) if key in self.versions else None) != version:
            raise StateConflict(key)
        self.versions[key] = self.versions.get(key, 0) + 1
        self.objects[key] = body
        return str(self.versions[key])

    async def _get_state(self, key: str) -> tuple[bytes, str | None] | None:
        return (self.objects[key], str(self.versions[key])) if key in self.objects else None

    async def _exists(self, key: str) -> bool:
        return key in self.objects

    async def _list(self, prefix: str) -> list[str]:
        return [key for key in self.objects if key.startswith(prefix)]

    async def _delete(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    @staticmethod
    def _classify(exc: Exception) -> Exception:
        return exc

    def contents(self) -> dict[str, bytes]:
        """Every object, data objects gunzipped (their gzip framing may differ only if deflate did)."""
        return {key: gzip.decompress(body) if key.endswith(".gz") else body for key, body in self.objects.items()}


def lines_of(records: list[tuple[int, list[tuple[str, int]]]], unordered: set[int]) -> list[SinkLine]:
    """SinkLines of records (offset, [(stream, position)]); a stream "" gives a line id that is not Logweave's."""
    out = []
    for offset, entries in records:
        for index, (stream, position) in enumerate(entries):
            lid = f"{stream}-{position:x}" if stream else f"foreign{offset}.{index}"
            document = b'{"o":%d,"i":%d,"s":"%s","p":%d}' % (offset, index, stream.encode(), position)
            out.append(SinkLine(lid, "t", BASE_NS + (offset * 7 + index) * 600 * 10**9, "info", "svc", document,
                                offset, index, offset not in unordered))
    return out


async def write_both(batches: list[list[SinkLine]], native: bool) -> tuple[MemoryStore, MemoryStore]:
    by_lines, packed = MemoryStore(native), MemoryStore(native)
    for lines in batches:
        await by_lines.write_batch(SinkBatch("sink.s3", 0, lines))
        await packed.write_batch(SinkBatch("sink.s3", 0, [], -1, pack_sink_lines(lines)))
        assert packed.contents() == by_lines.contents()
    return by_lines, packed


def native_modes() -> list[bool]:
    return [True, False] if native_select() is not None and native_times_within() is not None else [False]


@pytest.mark.parametrize("native", native_modes(), ids=lambda n: "c" if n else "reference")
async def test_a_replay_and_a_resend_leave_the_same_objects_and_states(native: bool) -> None:
    records = [(0, [("aa", 1), ("bb", 1)]), (1, [("aa", 2), ("", 0)]), (2, [("aa", 3)])]
    first = lines_of(records, set())
    resent = lines_of([(3, [("aa", 2), ("aa", 4), ("bb", 1), ("bb", 2)])], set())  # aa 2 and bb 1 again
    by_lines, packed = await write_both([first, first[1:], [*first[2:], *resent], resent[1:]], native)
    bodies = [body for key, body in packed.contents().items() if key.endswith(".gz")]
    assert b"".join(bodies) == ndjson(first) + ndjson([resent[1], resent[3]])
    assert len(by_lines.objects) == 3  # two data objects and the state


@pytest.mark.parametrize("native", native_modes(), ids=lambda n: "c" if n else "reference")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["", "aa", "bb"]), st.integers(0, 6)), min_size=0, max_size=5),
                min_size=1, max_size=5),
       st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=4),
       st.sets(st.integers(0, 4)))
def test_generated_batches_leave_the_same_objects_and_states(native: bool, records: list[list[tuple[str, int]]],
                                                             cuts: list[tuple[int, int, int]],
                                                             unordered: set[int]) -> None:
    lines = lines_of(list(enumerate(records)), unordered)
    if not lines:
        return
    batches = []
    for start, _, length in cuts:  # slices of the lines in order: replays, overlaps and records cut inside
        begin = min(start * 2, len(lines) - 1)
        batches.append(lines[begin:begin + length + 1])
    asyncio.run(write_both(batches, native))


@pytest.mark.parametrize("native", native_modes(), ids=lambda n: "c" if n else "reference")
@pytest.mark.parametrize("time_ns", [-1, 4_102_444_800 * 10**9, 1 << 70])
async def test_a_packed_batch_with_an_event_time_out_of_range_is_handed_back_untouched(native: bool,
                                                                                      time_ns: int) -> None:
    sink = MemoryStore(native)
    lines = lines_of([(0, [("aa", 1), ("aa", 2)]), (1, [("aa", 3)])], set())
    await sink.write_batch(SinkBatch("sink.s3", 0, lines[:1]))
    before = sink.contents()
    lines[2].time_ns = time_ns
    with pytest.raises(NeedsLines):
        await sink.write_batch(SinkBatch("sink.s3", 0, [], -1, pack_sink_lines(lines)))
    assert sink.contents() == before
    result = await sink.write_batch(SinkBatch("sink.s3", 0, lines))  # as lines, as the drain sends them next
    assert [(f.line.offset, f.reason) for f in result.permanent] == [(1, "event_time_out_of_range")]
    assert [gzip.decompress(body) for key, body in sink.objects.items() if key.endswith(".gz")] == \
        [ndjson(lines[:1]), ndjson(lines[1:2])]


async def test_a_packed_record_without_times_is_handed_back() -> None:
    sink = MemoryStore(True)
    record = pack_sink_lines(lines_of([(0, [("aa", 1)])], set()))[0]
    record.times = b""
    with pytest.raises(NeedsLines):
        await sink.write_batch(SinkBatch("sink.s3", 0, [], -1, [record]))
    assert not sink.objects

