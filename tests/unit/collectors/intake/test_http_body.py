"""Body shapes of POST /v1/logs, and the identity each accepted line gets."""

from __future__ import annotations

import orjson
import pytest

from collectors.intake.http_body import parse_body
from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import request_id


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
