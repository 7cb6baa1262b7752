"""The drain's C splice (agents/_sinksplice.h, sink_lines) writes exactly the Python reference's documents.

Differential: every chunk is expanded twice, once through the C splice (with the reference as its
fallback) and once through the reference alone; the sink lines (every field, the document byte for
byte) and the total size must be equal, or both must raise the same error. The inputs aim at what
the splice decides itself: escapes and control characters in every string, non-ASCII and lone
surrogates, nested and empty objects, text already holding the reserved key, white space before the
closing brace (ASCII and Unicode), huge lines, integers outside 64 bits, values of the wrong type.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.drain_runner import SinkRecord, chunk_sink_lines, native_splice, raw_sink_lines
from core.models import ParsedChunk
from sinks.base import SinkLine

_linescan = pytest.importorskip("agents._linescan", reason="C extension not built (pure-Python install)")
SPLICE = native_splice()
if SPLICE is None:
    pytest.skip("the C loops are off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

SOURCE = {"kind": "file", "node": "n1", "namespace": "shop", "pod": "api-7f9", "container": "api", "restart": 0}


def fields(line: SinkLine) -> tuple[Any, ...]:
    return (line.line_id, line.trace_id, line.time_ns, line.level, line.service, line.document, line.offset,
            line.index, line.ordered, type(line.document))


def expand(lines: list[list[Any]], reserved_key: str = "logweave", ordered: bool = True,
           sources: list[dict[str, Any]] | None = None) -> tuple[Any, Any]:
    """(C result, reference result): lists of line fields and the total size, or the error's type."""
    chunk = ParsedChunk([SOURCE] if sources is None else sources, lines, ordered)
    # the parsed lines as the drain sees them; a chunk that orjson cannot encode goes in as objects
    try:
        record = SinkRecord(3, 41, chunk.encode())
    except TypeError:
        record = None

    def run(splice: Any) -> Any:
        try:
            if record is not None:
                out, size = chunk_sink_lines(record, reserved_key, splice)
            else:  # lone surrogates: not encodable, so call the expansion on the objects themselves
                out, size = expand_objects(chunk, reserved_key, splice)
        except Exception as exc:  # the two paths must fail alike
            return type(exc).__name__
        return [fields(line) for line in out], size

    return run(SPLICE), run(None)


def expand_objects(chunk: ParsedChunk, reserved_key: str, splice: Any) -> tuple[list[SinkLine], int]:
    import agents.drain_runner as runner

    original = ParsedChunk.decode
    try:
        ParsedChunk.decode = classmethod(lambda cls, data: chunk)  # type: ignore[method-assign, assignment]
        return runner.chunk_sink_lines(SinkRecord(3, 41, b""), reserved_key, splice)
    finally:
        ParsedChunk.decode = original  # type: ignore[method-assign]


def line(text: str, sid: Any = "file:2049:7:ab:0", pos: Any = 1024, time_ns: Any = 1_749_543_941_630_702_460,
         trace: Any = "4bf92f", level: Any = "info", service: Any = "checkout", stream: Any = "stdout",
         src: Any = 0) -> list[Any]:
    return [src, sid, pos, time_ns, trace, level, service, text, stream]


HOSTILE_TEXTS = [
    '{"msg":"ok"}', "{}", "{ }", "{\t\n}", '{"a":{"b":{"c":[1,{"d":{}}]}}}', '{"m":"say \\"hi\\" \\\\ there"}',
    '{"m":"é 中文 \U0001f600"}', '{"m":"x"}   ', '{"m":"x"  }', '{"m":"x"\u00a0}', '{"m":"x"\u2028}',
    '{"m":"x"\x1c}', '{"m":"\\u0000"}', '{"logweave":{"old":1},"m":1}', '{"m":"logweave"}', '{"mlogweave":1}',
    '{"logweave":1}', "}", "", "[1,2]", "not json", '{"m":1}x', '{"k":"\udcff"}', '{"x":"' + "y" * 3_000_000 + '"}',
    '{"a":1,"b":2}', '{"\\"logweave\\"":1}', '{"m":"\x7f"}',
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_hostile_texts_are_spliced_like_the_reference(text: str) -> None:
    fast, ref = expand([line(text), line('{"ok":true}', pos=2048)])
    assert fast == ref


@pytest.mark.parametrize("changes", [
    {"sid": "a\"b\\c\n\x01\x1f\x7fé"}, {"trace": "t\"\\\b\f\n\r\t\x00"}, {"level": ""}, {"service": "srv\u2028中"},
    {"stream": "std\x02err"}, {"pos": 0}, {"pos": -5}, {"pos": 1 << 63}, {"pos": (1 << 63) - 1}, {"pos": True},
    {"pos": 1.5}, {"time_ns": -1}, {"time_ns": 1 << 70}, {"time_ns": None}, {"src": 1}, {"src": -1},
    {"src": "0"}, {"trace": 7}, {"level": None}, {"sid": 12}, {"trace": "\udc80"}, {"service": "\ud83d"},
    {"sid": ""}, {"trace": "x" * 100_000},
], ids=repr)
def test_hostile_fields_are_written_like_the_reference(changes: dict[str, Any]) -> None:
    fast, ref = expand([line('{"msg":"ok"}', **changes), line('{"msg":"next"}', pos=4096)])
    assert fast == ref


def test_a_line_that_is_not_a_nine_field_list_fails_alike() -> None:
    for bad in ([1, 2, 3], "text", None, line("{}") + ["extra"]):
        fast, ref = expand([line("{}"), bad])
        assert fast == ref


@pytest.mark.parametrize("reserved_key", ["logweave", "_lw", "", "clé", "m"])
def test_any_reserved_key_is_spliced_like_the_reference(reserved_key: str) -> None:
    texts = ['{"m":"x"}', '{"_lw":1}', '{"clé":2}', '{"":3}', "{}"]
    fast, ref = expand([line(t, pos=i) for i, t in enumerate(texts)], reserved_key)
    assert fast == ref


def test_unordered_chunks_and_many_sources_keep_their_marks() -> None:
    sources = [SOURCE, {"kind": "pod-api", "labels": {"app": "a\"b"}}, {}]
    fast, ref = expand([line("{}", src=i % 3, pos=i) for i in range(9)], ordered=False, sources=sources)
    assert fast == ref
    assert fast[0][4][8] is False  # type: ignore[index]


def test_the_common_line_is_made_in_c_not_by_the_reference() -> None:
    """The splice must not quietly hand every line to the Python fallback."""
    calls: list[int] = []

    def fallback(line: list[Any], index: int) -> SinkLine:
        calls.append(index)
        raise AssertionError("the common line went to the fallback")

    lines = [line('{"msg":"ok"}', pos=i) for i in range(5)]
    out, size = SPLICE(lines, [orjson.dumps(SOURCE)], "logweave", {}, lambda sid: "d" * 16,
                       SinkLine, 7, True, fallback)
    assert calls == []
    assert [x.line_id for x in out] == [f"{'d' * 16}-{i:x}" for i in range(5)]
    assert size == sum(len(x.document) for x in out)
    doc = orjson.loads(out[3].document)
    assert doc["logweave"] == {"sid": "file:2049:7:ab:0", "pos": 3, "lid": "d" * 16 + "-3",
                               "time_ns": 1_749_543_941_630_702_460, "trace": "4bf92f", "level": "info",
                               "service": "checkout", "stream": "stdout", "source": SOURCE}


int64 = st.integers(-(1 << 63), (1 << 63) - 1)
json_values = st.recursive(st.none() | st.booleans() | int64 | st.text(),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=8)
texts = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(lambda d: orjson.dumps(d).decode()),
    st.text(max_size=40),
)
strings = st.one_of(st.text(max_size=12), st.sampled_from(["\udcff", "a\ud800b", "\x00\x1f\"\\"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(texts, strings, st.integers(-2, 1 << 64), st.integers(-(1 << 64), 1 << 64), strings,
                          strings, strings, strings, st.integers(-2, 2)), min_size=1, max_size=6),
       st.sampled_from(["logweave", "m", "a"]))
def test_generated_chunks_are_expanded_like_the_reference(rows: list[tuple[Any, ...]], reserved_key: str) -> None:
    lines = [line(text, sid, pos, time_ns, trace, level, service, stream, src)
             for text, sid, pos, time_ns, trace, level, service, stream, src in rows]
    fast, ref = expand(lines, reserved_key, sources=[SOURCE, {"n": 1}])
    assert fast == ref


# -- the record's bytes read directly (sink_lines_raw) ------------------------------------------------------
LINE = '[0,"file:1:2:ab:0",1024,1749543941630702460,"4bf92f","info","checkout","{\\"m\\":\\"ok\\"}","stdout"]'
HEAD = '{"v":1,"t":"parsed","srcs":[{"kind":"file","node":"n1"}],"lines":['


def raw_record(body: str | bytes) -> SinkRecord:
    return SinkRecord(0, 9, body.encode() if isinstance(body, str) else body)


def both_raw(record: SinkRecord, reserved_key: str = "logweave") -> tuple[Any, Any]:
    def run(splice: Any) -> Any:
        try:
            out, size = chunk_sink_lines(record, reserved_key, splice)
        except Exception as exc:  # the two paths must fail alike
            return type(exc).__name__
        return [fields(x) for x in out], size

    return run(SPLICE), run(None)


def test_records_as_the_group_stage_writes_them_are_read_without_decoding() -> None:
    lines = [line('{"msg":"say \\"hi\\"\\n\\u0001","n":[1,{"k":"é"}]}', pos=i, trace=f"t{i // 2}") for i in range(6)]
    for ordered in (True, False):
        record = SinkRecord(1, 5, ParsedChunk([SOURCE, {"k": "v"}], lines, ordered).encode())
        found = raw_sink_lines(record, "logweave")
        assert found is not None, "an orjson-written chunk must take the raw path"
        assert ([fields(x) for x in found[0]], found[1]) == both_raw(record)[1]
    assert raw_sink_lines(SinkRecord(0, 0, b'{"v":1,"t":"parsed","srcs":[],"lines":[]}'), "logweave") == ([], 0)


RAW_RECORDS = [
    HEAD + LINE + "]}", HEAD + LINE + "," + LINE + '],"unordered":true}', HEAD + LINE + "," + LINE + "]}",
    HEAD + LINE + "] }", HEAD + " " + LINE + "]}", HEAD + LINE.replace(",1024,", ", 1024,") + "]}",
    HEAD + LINE + "]}x", HEAD + LINE + "]", HEAD + LINE, HEAD + LINE + ",]}", HEAD + "]}", HEAD + LINE + "]]}",
    HEAD.replace('"v":1', '"v":2') + LINE + "]}", HEAD.replace('"t":"parsed"', '"t":"raw"') + LINE + "]}",
    '{"t":"parsed","v":1,"srcs":[{}],"lines":[' + LINE + "]}", HEAD + LINE + '],"unordered":false}',
    HEAD + LINE.replace("checkout", "check\\/out") + "]}", HEAD + LINE.replace("checkout", "\\u0063heckout") + "]}",
    HEAD + LINE.replace("stdout", "std\\u001Fout") + "]}", HEAD + LINE.replace("stdout", "std\\u001fout") + "]}",
    HEAD + LINE.replace("stdout", "std\\u0008out") + "]}", HEAD + LINE.replace("stdout", "std\\ud83d\\ude00") + "]}",
    HEAD + LINE.replace("stdout", "std\\ud800") + "]}", HEAD + LINE.replace(",1024,", ",01024,") + "]}",
    HEAD + LINE.replace(",1024,", ",-0,") + "]}", HEAD + LINE.replace(",1024,", ",-1024,") + "]}",
    HEAD + LINE.replace(",1024,", ",1024.0,") + "]}", HEAD + LINE.replace(",1024,", ",18446744073709551616,") + "]}",
    HEAD + LINE.replace("1749543941630702460", "9223372036854775807") + "]}",
    HEAD + LINE.replace("1749543941630702460", "-9223372036854775808") + "]}",
    HEAD + LINE.replace("1749543941630702460", "9223372036854775808") + "]}",
    HEAD + LINE.replace("[0,", "[1,") + "]}", HEAD + LINE.replace("[0,", "[-1,") + "]}",
    HEAD + LINE.replace('"stdout"]', '"stdout",1]') + "]}", HEAD + LINE.replace('"info",', "") + "]}",
    HEAD + LINE.replace('"info"', "null") + "]}", HEAD + LINE.replace('\\"m\\"', '\\"logweave\\"') + "]}",
    HEAD + LINE.replace('{\\"m\\":\\"ok\\"}', "{}") + "]}", HEAD + LINE.replace('{\\"m\\":\\"ok\\"}', "[]") + "]}",
    HEAD + LINE.replace('\\"ok\\"}', '\\"ok\\" \\t}') + "]}",
    HEAD + LINE.replace('\\"ok\\"}', '\\"ok\\"\u00a0}') + "]}",
    '{"v":1,"t":"parsed","srcs":[{"a":[1,{"b":"\\u00e9"}]}, {}],"lines":[' + LINE.replace("[0,", "[1,") + "]}",
    '{"v":1,"t":"parsed","srcs":[{"a":1e999}],"lines":[' + LINE + "]}", '{"v":1,"t":"parsed","srcs":[',
    HEAD + LINE.replace("checkout", "x" * 300_000) + "]}",
]


@pytest.mark.parametrize("body", RAW_RECORDS, ids=range(len(RAW_RECORDS)))
def test_hostile_records_are_read_like_the_reference(body: str) -> None:
    fast, ref = both_raw(raw_record(body))
    assert fast == ref


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x01",
                                 b"\xc3\xa9", b"\xf0\x9f\x98\x80"], ids=repr)
def test_invalid_utf8_in_a_record_is_read_like_the_reference(bad: bytes) -> None:
    for at in ("checkout", "stdout", '\\"ok'):
        fast, ref = both_raw(raw_record((HEAD + LINE + "]}").encode().replace(at.encode(), at.encode() + bad)))
        assert fast == ref


def test_records_forwarded_with_their_collection_time_take_the_raw_path() -> None:
    """The group stage forwards logs.parsed records as received, `ct` included: still no decoding."""
    lines = [line('{"msg":"ok"}', pos=i) for i in range(3)]
    for ordered in (True, False):
        for collected in (1_749_543_941_000_000_000, 0, -7):
            record = SinkRecord(1, 5, ParsedChunk([SOURCE], lines, ordered, collected).encode())
            found = raw_sink_lines(record, "logweave")
            assert found is not None, record.value[-40:]
            assert ([fields(x) for x in found[0]], found[1]) == both_raw(record)[1]


CT_TAILS = ['],"ct":1}', '],"ct":-1}', '],"unordered":true,"ct":12}', '],"ct":1.5}', '],"ct":"1"}', '],"ct":}',
            '],"ct":-}', '],"ct":1,"unordered":true}', '],"ct":1 }', '],"xct":1}', '],"unordered":true,"ct":1,"ct":2}']


@pytest.mark.parametrize("tail", CT_TAILS, ids=range(len(CT_TAILS)))
def test_fields_after_the_lines_are_read_like_the_reference(tail: str) -> None:
    fast, ref = both_raw(raw_record(HEAD + LINE + tail))
    assert fast == ref


@pytest.mark.parametrize("special", ['\\"', "\\\\", "\\u0001", "\\n", "é", "\x7f", "\U0001f600", " ", "~"])
def test_a_special_character_anywhere_in_a_field_is_read_like_the_reference(special: str) -> None:
    """A character the raw reader must look at (an escape, a control, non-ASCII), wherever it falls."""
    for at in range(0, 20):
        text = ("x" * at + special + "y" * (19 - at)).replace('"', '\\"')
        body = HEAD + LINE.replace('{\\"m\\":\\"ok\\"}', '{\\"m\\":\\"' + text + '\\"}').replace(
            "checkout", "c" * at + special.replace("\\n", "") + "d") + "]}"
        fast, ref = both_raw(raw_record(body))
        assert fast == ref, at


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\x01", b"\x80"], ids=repr)
def test_an_invalid_byte_anywhere_in_a_field_is_read_like_the_reference(bad: bytes) -> None:
    for at in range(0, 20):
        body = (HEAD + LINE + "]}").encode().replace(b"checkout", b"c" * at + bad + b"d" * (19 - at))
        fast, ref = both_raw(raw_record(body))
        assert fast == ref, at
