"""Object keys of the object-store base when the drain splits one record larger than the flush size."""

from __future__ import annotations

from sinks.base import SinkBatch, SinkLine
from sinks.object_store import object_key, sibling_prefix

BASE_NS = 1_749_543_941_000_000_000


def part(offset: int, indexes: range) -> SinkBatch:
    return SinkBatch("sink.gcs", 0, [SinkLine(f"l{i}", "t", BASE_NS, "info", "svc", b"{}", offset, i) for i in indexes])


def test_parts_of_one_record_get_their_own_keys_and_siblings() -> None:
    head, tail = part(16, range(0, 50)), part(16, range(50, 100))
    assert object_key("p", head).endswith("-0000000000000000016-0000000000000000016.ndjson.gz")
    assert object_key("p", tail).endswith("-0000000000000000016i50-0000000000000000016.ndjson.gz")
    assert not object_key("p", tail).startswith(sibling_prefix(object_key("p", head)))
    assert not object_key("p", head).startswith(sibling_prefix(object_key("p", tail)))
    longer_retry = part(16, range(50, 80))  # a retry of the tail, cut elsewhere: the tail's sibling
    assert object_key("p", longer_retry).startswith(sibling_prefix(object_key("p", tail)))
