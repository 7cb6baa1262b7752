"""How a line becomes a row of `logs`: promoted columns, the application's fields as attributes."""

from __future__ import annotations

import orjson

from sinks.base import SinkLine
from sinks.postgres import row_of


def line(doc: dict[str, object]) -> SinkLine:
    meta = {"lid": "abc-1", "source": {"namespace": "shop", "pod": "cart-1", "container": "app", "node": "n1"}}
    return SinkLine("abc-1", "tr", 1_000_000_123_456, "warn", "cart", orjson.dumps({**doc, "logweave": meta}), 0, 0)


def test_row_promotes_source_message_and_tags_and_keeps_the_rest_as_attributes() -> None:
    row = row_of(line({"message": "hello", "tags": ["a", 3, "b"], "user": {"id": 7}}), "logweave")
    assert row[:10] == (1_000_000_123_456, "abc-1", "tr", "cart", "warn", "hello", "shop", "cart-1", "app", "n1")
    assert orjson.loads(row[10]) == {"message": "hello", "tags": ["a", 3, "b"], "user": {"id": 7}}
    assert row[11] == ["a", "b"]  # only strings become tags


def test_message_field_order_and_absent_fields() -> None:
    assert row_of(line({"msg": "first", "message": "second"}), "logweave")[5] == "first"
    assert row_of(line({"log": "third"}), "logweave")[5] == "third"
    assert row_of(line({"msg": 42}), "logweave")[5] == ""
    assert row_of(line({"tags": "not-a-list"}), "logweave")[11] == []
