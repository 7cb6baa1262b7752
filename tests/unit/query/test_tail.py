"""The live tail's matching: filters of /query, and `q` as words that must all appear."""

from __future__ import annotations

import orjson

from core.models import ParsedChunk
from core.settings import ApiSettings
from query.params import LogQuery, parse_log_query
from query.tail import lines_of_chunk, matches

SOURCE = {"namespace": "shop", "pod": "cart-1", "container": "app", "node": "n1"}


def chunk() -> bytes:
    lines = [[0, "s1", 5, 1_000_000_123_456, "tr-1", "error", "cart",
              orjson.dumps({"msg": "Payment TIMEOUT for user 7", "logweave": {"x": 1}}).decode(), "stdout"],
             [0, "s1", 6, 1_000_000_200_000, "tr-2", "info", "pay", orjson.dumps({"msg": "ok"}).decode(), "stdout"]]
    return ParsedChunk([SOURCE], lines).encode()


def test_lines_are_shaped_as_stored_and_filtered_like_queries() -> None:
    first, second = lines_of_chunk(chunk(), "logweave")
    assert (first.time_ns, first.trace_id, first.pod, first.message) == (1_000_000_123_000, "tr-1", "cart-1",
                                                                         "Payment TIMEOUT for user 7")
    assert first.attributes == {"msg": "Payment TIMEOUT for user 7"} and first.line_id.endswith("-5")

    def query(**params: str) -> LogQuery:
        return parse_log_query(params, ApiSettings())

    assert matches(first, query(service="cart", level="error,fatal"))
    assert not matches(second, query(service="cart"))
    assert matches(first, query(q="timeout payment"))
    assert not matches(first, query(q="timeout refund"))
    assert not matches(first, query(trace_id="tr-2"))
