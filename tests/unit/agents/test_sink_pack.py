"""The drain's packed records (agents/_sinksplice.h, pack_lines_raw) are the Python reference's, byte for byte.

Differential: every record is packed twice, once by the C splice reading the record's bytes and once by
the reference (the reference splice's SinkLines through `pack_sink_lines`); documents, table, stream
digests, event times and order must be equal, or both must raise the same error. The inputs are the raw splice's
hostile records (tests/unit/agents/test_sink_splice.py) and generated chunks.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agents.drain_runner as drain_runner
from agents.drain_runner import SinkRecord, chunk_sink_lines, native_splice, packed_record
from core.codec import compressor
from core.models import ParsedChunk
from sinks.packed import PACK_ENTRY, TIME, PackedRecord, pack_sink_lines
from tests.unit.agents.test_sink_splice import CT_TAILS, HEAD, LINE, RAW_RECORDS, SOURCE, line, strings, texts

pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")
SPLICE = native_splice()
if SPLICE is None:
    pytest.skip("the C loops are off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)


def fields(packed: PackedRecord) -> tuple[Any, ...]:
    return (packed.offset, packed.documents, packed.table, packed.streams, packed.ordered, packed.first_index,
            packed.times)


def both(record: SinkRecord, reserved_key: str = "logweave") -> tuple[Any, Any]:
    """(C result, reference result): the packed record's fields, or the error's type."""

    def run(splice: Any) -> Any:
        try:
            return fields(packed_record(record, reserved_key, splice, {}))
        except Exception as exc:  # the two paths must fail alike
            return type(exc).__name__

    return run(SPLICE), run(None)


def test_a_record_as_the_group_stage_writes_it_is_packed_in_c(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line(f'{{"msg":"say \\"hi\\"","n":{i}}}', sid=f"s{i % 3}", pos=i * 10) for i in range(7)]
    record = SinkRecord(2, 17, compressor("lz4")(ParsedChunk([SOURCE], lines, collected_ns=5).encode()))
    reference = both(record)[1]

    def no_reference(*args: Any) -> Any:
        raise AssertionError("the common record went to the Python reference")

    monkeypatch.setattr(drain_runner, "pack_sink_lines", no_reference)
    packed = packed_record(record, "logweave", SPLICE)
    assert fields(packed) == reference
    assert packed.count == 7 and packed.streams == [drain_runner.stream_digest(f"s{i}") for i in range(3)]
    entries = list(PACK_ENTRY.iter_unpack(packed.table))
    assert [(pos, stream) for _, pos, stream in entries] == [(i * 10, i % 3) for i in range(7)]
    documents = packed.documents.split(b"\n")[:-1]
    spliced, _ = chunk_sink_lines(record, "logweave", None)
    assert documents == [x.document for x in spliced] and entries[-1][0] == len(packed.documents)
    assert [when for (when,) in TIME.iter_unpack(packed.times)] == [x.time_ns for x in spliced]


def test_an_empty_record_packs_to_nothing() -> None:
    record = SinkRecord(0, 3, ParsedChunk([SOURCE], []).encode())
    assert both(record)[0] == both(record)[1] == (3, b"", b"", [], True, 0, b"")


@pytest.mark.parametrize("body", RAW_RECORDS + [HEAD + LINE + tail for tail in CT_TAILS],
                         ids=range(len(RAW_RECORDS) + len(CT_TAILS)))
def test_hostile_records_are_packed_like_the_reference(body: str) -> None:
    fast, ref = both(SinkRecord(0, 9, body.encode()))
    assert fast == ref


KEY_TEXTS = [  # the reserved key near or at the text's edges, quoted, half-quoted, repeated, overlapping
    '{"logweave":1}', '{"m":"logweave"}', '{"m":"xlogweave"}', '{"logweavex":1}', '{"xlogweave":1}',
    '{"m":"logweavelogweave"}', '{"m":"logweave\\"}', '{"a":"logweav","b":"logweave"}', '{"m":"log weave"}',
    '{"m":"\\"logweave\\""}', '{"m":""}', '{"":1}', '{"m":"lw","lw":2}', '{"m":"\\u006cogweave"}', '{"logweave"}',
]


@pytest.mark.parametrize("reserved_key", ["logweave", "lw", "", "logweavelogweave"])
@pytest.mark.parametrize("text", KEY_TEXTS, ids=range(len(KEY_TEXTS)))
def test_a_text_holding_the_reserved_key_is_packed_like_the_reference(text: str, reserved_key: str) -> None:
    """The C splice is sure only of a text without `"<reserved key>"` in it (anywhere: a value too); any
    other text goes to the reference, which re-serializes the object. Differential on the key's edges."""
    record = SinkRecord(0, 4, ParsedChunk([SOURCE], [line(text), line('{"ok":1}', pos=2)]).encode())
    fast, ref = both(record, reserved_key)
    assert fast == ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(texts, st.sampled_from(["a", "b", "c\"d", "é"]) | strings, st.integers(-2, 1 << 64),
                          st.integers(-(1 << 64), 1 << 64), strings, strings, strings, strings, st.integers(-1, 2)),
                min_size=0, max_size=8),
       st.sampled_from(["logweave", "m", "a"]), st.booleans())
def test_generated_chunks_are_packed_like_the_reference(rows: list[tuple[Any, ...]], reserved_key: str,
                                                        ordered: bool) -> None:
    lines = [line(text, sid, pos, time_ns, trace, level, service, stream, src)
             for text, sid, pos, time_ns, trace, level, service, stream, src in rows]
    try:
        value = ParsedChunk([SOURCE, {"n": 1}], lines, ordered).encode()
    except TypeError:  # lone surrogates: not a record orjson can write, so none the drain can read
        return
    fast, ref = both(SinkRecord(1, 4, value), reserved_key)
    assert fast == ref


def test_the_reference_packs_runs_of_consecutive_lines_of_one_record() -> None:
    """A batch of SinkLines handed to the file sink directly (not by the drain) may start inside a
    record and span several: one packed run per record and per gap in the indexes."""
    record = SinkRecord(0, 5, ParsedChunk([SOURCE], [line("{}", pos=i) for i in range(4)]).encode())
    spliced, _ = chunk_sink_lines(record, "logweave", None)
    later = SinkRecord(0, 6, ParsedChunk([SOURCE], [line("{}", pos=9)]).encode())
    runs = pack_sink_lines([*spliced[1:3], spliced[3], *chunk_sink_lines(later, "logweave", None)[0]])
    assert [(run.offset, run.first_index, run.count) for run in runs] == [(5, 1, 3), (6, 0, 1)]
    assert pack_sink_lines([spliced[0], spliced[2]])[1].first_index == 2
