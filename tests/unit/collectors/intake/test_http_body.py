"""Body shapes of POST /v1/logs, and the identity each accepted line gets."""

from __future__ import annotations

import random

import orjson
import pytest

from collectors.intake.http_body import all_objects, careful_ndjson, parse_body
from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import EXAMPLE_BYTES, RequestLines, request_id


def texts(body: bytes, content_type: str = "application/json") -> list[tuple[int, str]]:
    return [(line[0], line[1]) for line in parse_body(body, content_type, 10, 100, 1).lines]


def test_array_envelope_single_object_and_ndjson() -> None:
    assert texts(b'[{"a":1},{"b":2}]') == [(0, '{"a":1}'), (1, '{"b":2}')]
    assert texts(b'{"logs":[{"a":1}]}') == [(0, '{"a":1}')]
    assert texts(b'{"a": 1}') == [(0, '{"a":1}')]
    assert texts(b'{"a": 1}\n\n{"b": 2}\n', "text/plain") == [(0, '{"a": 1}'), (1, '{"b": 2}')]
    assert texts(b'{"a": 1}', "application/x-ndjson") == [(0, '{"a": 1}')]


def test_first_bad_record_is_named_and_the_rest_kept() -> None:
    parsed = parse_body(b'[{"a":1}, 3, {"b":"' + b"x" * 200 + b'"}, {"c":3}]', "", 10, 100, 1)
    assert [line[0] for line in parsed.lines] == [0, 3]
    assert [r.reason for r in parsed.rejections] == ["not_object", "line_too_long"]
    assert parsed.rejections[0].describe() == "record 1: not a JSON object (got number)"
    broken = parse_body(b"[1, 2", "", 10, 100, 1)
    assert not broken.lines and broken.rejections[0].reason == "not_json"
    assert parse_body(b'{"logs": 5}', "", 10, 100, 1).rejections[0].reason == "not_object"


def test_too_many_records_is_a_limit_not_a_rejection() -> None:
    with pytest.raises(LimitExceeded, match="max_records"):
        parse_body(orjson.dumps([{}] * 11), "", 10, 100, 1)
    with pytest.raises(LimitExceeded, match="max_records"):
        parse_body(b"{}\n" * 11, "", 10, 100, 1)


def test_request_ids_come_from_the_retry_key_or_are_fresh() -> None:
    assert request_id("abc-1") == request_id("abc-1") == "key:abc-1"
    assert request_id(None) != request_id(None)
    with pytest.raises(ValueError, match="Idempotency-Key"):
        request_id("has space")


def test_the_fast_ndjson_path_and_the_careful_one_agree() -> None:
    rows = [orjson.dumps({"n": i, "s": "é"}) for i in range(5)]
    fast = parse_body(b"\n".join(rows) + b"\n", "application/x-ndjson", 10, 100, 7)
    careful = parse_body(b"\r\n".join(rows) + b"\r\n\n", "application/x-ndjson", 10, 100, 7)  # \r: the careful path
    assert fast.lines == careful.lines and not fast.rejections and fast.size == careful.size == sum(map(len, rows))
    mixed = parse_body(b'{"a":1}\n[1]\n{"b":2}\n', "application/x-ndjson", 10, 100, 7)
    assert [line[0] for line in mixed.lines] == [0, 2] and mixed.rejections[0].index == 1


# Rows on which JSON parsers are known to differ: numbers past the float range or 64 bits, lone and
# paired surrogates, nesting depth, invalid UTF-8, control characters, whitespace around a row.
TRICKY_ROWS = [
    b'{"a":1e400}', b'{"a":1e309}', b'{"a":1.7976931348623159e308}', b'{"a":1' + b"0" * 400 + b"}",
    b'{"a":1e-400}', b'{"a":18446744073709551616}', b'{"a":-9223372036854775809}',
    b'{"a":123456789012345678901234567890}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00x"}', b'{"a":"\\ud800\\udc00"}', b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}',
    b'{"a":' + b"[" * 1022 + b"]" * 1022 + b"}", b'{"a":' + b"[" * 1023 + b"]" * 1023 + b"}",
    b'{"a":' + b"[" * 1030 + b"]" * 1030 + b"}", b'{"a":"\x00"}', b'{"a":"\x7f"}', b'{"a":"\\u0000"}', b'{"a":1}\x00',
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":01}', b'{"a":1.}', b'{"a":.5}', b'{"a":1,}', b'{"a":tru}', b'{1:2}',
    b'{"a":1}{"b":2}', b'{"a":1},{"b":2}', b'{"a":[{"b":1}', b'{"c":1}]}', b"  {\"a\": 1}\t", b'{"a":1}\x0b',
    b"\xef\xbb\xbf{}", b"[1]", b"3", b'"s"', b"null", b"{}", b'{"":""}', b'{"a":-0.0e-0}', b'{"\\u0041":"\\/"}',
]


def test_the_bulk_check_accepts_nothing_the_careful_path_refuses() -> None:
    for row in TRICKY_ROWS:
        try:
            careful = type(orjson.loads(row.strip())) is dict
        except orjson.JSONDecodeError:
            careful = False
        if all_objects([row.strip()], 10_000):
            assert careful, row[:40]
    assert all_objects([b'{"a":1}', b'{"b":[1,{"c":null}]}'], 100)  # the bulk path is really taken
    assert not all_objects([b'{"a":1}', b""], 100) and not all_objects([b'{"a":1}'], 5)


def test_bulk_and_careful_ndjson_give_the_same_lines_and_rejections() -> None:
    rng = random.Random(22)
    clean = [orjson.dumps({"n": i, "s": "é" * rng.randrange(3), "t": [i, None, 1.5]}) for i in range(20)]
    for _ in range(400):
        rows = [rng.choice(clean) if rng.random() < 0.8 else rng.choice(TRICKY_ROWS)
                for _ in range(rng.randrange(1, 8))]
        body = b"\n".join(rows) + rng.choice([b"", b"\n"])
        bulk = parse_body(body, "application/x-ndjson", 50, 2000, 9)
        careful = careful_ndjson(body.split(b"\n"), RequestLines(), 50, 2000, 9)
        assert bulk.lines == careful.lines, body[:200]
        assert [(r.index, r.reason) for r in bulk.rejections] == [(r.index, r.reason) for r in careful.rejections]


def test_bulk_and_record_by_record_arrays_agree() -> None:
    """A JSON array body: the bulk path (one orjson.dumps per record) against add_record per record."""
    kinds = [b'{"a":1,"s":"\\u00e9"}', b'{"big":18446744073709551616}', b"3", b'"s"', b"[1]", b"{}",
             b'{"long":"' + b"x" * 300 + b'"}', b'{"n":{"t":[1.5,null,true]}}']
    rng = random.Random(5)
    for _ in range(300):
        body = b"[" + b",".join(rng.choice(kinds) for _ in range(rng.randrange(1, 6))) + b"]"
        bulk = parse_body(body, "application/json", 50, 200, 9)
        reference = RequestLines()
        for index, record in enumerate(orjson.loads(body)):
            reference.add_record(index, record, 200, 9)
        assert bulk.lines == reference.lines and bulk.size == reference.size, body[:120]
        assert [(r.index, r.reason) for r in bulk.rejections] == [(r.index, r.reason) for r in reference.rejections]


def test_each_bad_record_keeps_itself_as_the_example_and_a_whole_body_keeps_its_head() -> None:
    parsed = parse_body(b'{"a": 1}\n{"b": oops}\n[1, 2]\n{"c": "' + b"x" * 200 + b'"}\n', "application/x-ndjson",
                        10, 100, 1)
    assert [(r.reason, r.shown()) for r in parsed.rejections] == [
        ("not_json", b'{"b": oops}'), ("not_object", b"[1, 2]"), ("line_too_long", b'{"c": "' + b"x" * 200 + b'"}')]
    parsed = parse_body(b'[{"a":1}, 3, "text"]', "", 10, 100, 1)
    assert [r.shown() for r in parsed.rejections] == [b"3", b'"text"']  # as JSON, the way the client sent them
    broken = parse_body(b"[1, 2" + b" " * 5000, "", 10, 100, 1).rejections[0]
    assert broken.shown() == (b"[1, 2" + b" " * 5000)[:EXAMPLE_BYTES]  # the head of the body, not all of it
