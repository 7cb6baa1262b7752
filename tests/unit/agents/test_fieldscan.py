"""The C field reader (agents/_fieldscan.c) answers as decoding the line does, or says it is not sure.

Differential: for generated JSON objects, written compactly (orjson) and with spaces (json), the C
answer must equal `reference_number` on the decoded object, unless it is True (not sure: the caller
then decodes). The generators aim at what the scan decides itself: the key nested, used as a value or
given twice, escapes in keys and strings, numbers of every JSON shape, null and booleans.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.log_metrics import reference_number
from core.native import native_module

_fieldscan = pytest.importorskip("agents._fieldscan", reason="C extension not built (pure-Python install)")
if native_module("field_scan") is None:
    pytest.skip("the C scan is off in this process (LOGWEAVE_PURE=1)", allow_module_level=True)

KEY = "duration_ms"
KEYS = st.sampled_from([KEY, "d", "msg", "duration", "duration_ms2", 'dur"ation_ms', "durée", "ms\\x"])
NUMBERS = st.one_of(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
                    st.floats(allow_nan=False, allow_infinity=False))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12),
                    st.just(KEY), st.just('"duration_ms": 5'), st.just("{[,}]"))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
DOCS = st.dictionaries(KEYS, VALUES, max_size=6)


def check(text: str) -> None:
    found = _fieldscan.top_number(text, KEY)
    if found is True:
        return
    expected = reference_number(orjson.loads(text), KEY)
    assert found == expected and type(found) is type(expected), (text, found, expected)


@settings(max_examples=600, deadline=None)
@given(DOCS)
def test_the_c_answer_is_the_decoded_answer(doc: dict[str, Any]) -> None:
    check(orjson.dumps(doc).decode())
    check(json.dumps(doc, indent=1, ensure_ascii=False))
    check(json.dumps(doc))  # \u escapes


@pytest.mark.parametrize(("text", "expected"), [
    ('{"a":1,"duration_ms":12.5}', 12.5),
    ('{ "duration_ms" : -3e2 , "b":{"duration_ms":1}}', -300.0),
    ('{"b":{"duration_ms":1},"c":[{"duration_ms":2}]}', None),
    ('{"a":"duration_ms","x":0}', None),
    ('{"duration_ms":"12"}', False),
    ('{"duration_ms":true}', False),
    ('{"duration_ms":{"v":1}}', False),
    ('{"duration_ms":null}', None),
    ('{"duration_ms":1,"duration_ms":"x"}', False),  # the last of duplicate keys, as orjson
    ('{"msg":"a \\"duration_ms\\": 7","duration_ms":8}', 8.0),
    ("{}", None),
])
def test_known_answers(text: str, expected: float | bool | None) -> None:
    assert _fieldscan.top_number(text, KEY) == expected
    assert reference_number(orjson.loads(text), KEY) == expected


@pytest.mark.parametrize("text", [
    '{"duration\\u005fms":5}',  # a key with escapes: decoded to compare
    '{"duration_ms":1e999}',  # out of range
    '{"duration_ms":01}', '{"duration_ms":5', "[1]", "", '{"a" 1}', '{"duration_ms":5}x}', '{"a":"unterminated',
    '{"duration_ms":' + "1" * 80 + "}",
])
def test_unsure_when_decoding_must_tell(text: str) -> None:
    assert _fieldscan.top_number(text, KEY) is True


def test_only_text_is_taken() -> None:
    with pytest.raises(TypeError):
        _fieldscan.top_number(b"{}", KEY)  # type: ignore[arg-type]


def test_the_histogram_pass_buckets_skips_and_leaves_unsure_lines_to_the_caller() -> None:
    skip = object()
    texts = ['{"duration_ms":5}', '{"duration_ms":10}', '{"duration_ms":11.5}', '{"x":1}', '{"duration_ms":"a"}',
             '{"duration\\u005fms":3}', '{"duration_ms":1}']
    lines = [[0, "s", n, 0, "t", "info", "svc", text, "stdout"] for n, text in enumerate(texts)]
    series_of: dict[object, list[float]] = {}

    def new_series(key: object) -> list[float]:
        series_of[key] = [0.0, 0.0, 0.0]
        return series_of[key]

    keys: list[object] = ["a", "a", "b", "a", "a", "a", skip]
    assert _fieldscan.histogram(lines, 7, KEY, [10.0], keys, skip, series_of, new_series) == (1, 1, [5])
    assert series_of == {"a": [2.0, 0.0, 15.0], "b": [0.0, 1.0, 11.5]}


def test_the_histogram_pass_refuses_what_is_not_a_series() -> None:
    lines = [[0, "s", 0, 0, "t", "info", "svc", '{"duration_ms":1}', "stdout"]]
    with pytest.raises(TypeError, match="len"):
        _fieldscan.histogram(lines, 7, KEY, [10.0], ["a"], None, {"a": [0.0]}, list)
    with pytest.raises(KeyError, match="new_series did not add"):
        _fieldscan.histogram(lines, 7, KEY, [10.0], ["a"], None, {}, lambda key: [0.0, 0.0, 0.0])
    with pytest.raises(TypeError):
        _fieldscan.histogram(lines, 7, KEY, [10.0], [], None, {}, list)  # one key per line


def test_a_callback_that_changes_the_lines_stops_the_pass() -> None:
    lines: list[list[object]] = [[0, "s", n, 0, "t", "info", "svc", '{"duration_ms":1}', "stdout"] for n in range(3)]
    series_of: dict[object, list[float]] = {}

    def clearing(key: object) -> list[float]:
        lines.clear()
        series_of[key] = [0.0, 0.0, 0.0]
        return series_of[key]

    with pytest.raises(RuntimeError, match="changed the lines"):
        _fieldscan.histogram(lines, 7, KEY, [10.0], ["a", "b", "c"], None, series_of, clearing)
