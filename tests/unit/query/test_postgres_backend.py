"""Which searches query/postgres_backend.py answers keys-first (the page's bound from the
(service, level, time, line_id) index, then a bitmap heap scan), and the arguments of that statement."""

from __future__ import annotations

from typing import Any

import pytest

from query.params import Cursor, LogQuery
from query.postgres_backend import keys_first, search_sql, to_datetime

HOUR_NS = 3600 * 10**9


def query(**fields: Any) -> LogQuery:
    return LogQuery(from_ns=1_749_513_600_000_000_000, to_ns=1_749_513_600_000_000_000 + HOUR_NS, limit=100,
                    **fields)


@pytest.mark.parametrize(("fields", "first"), [
    ({"service": ["cart"], "level": ["error"]}, True),
    ({"service": ["cart"], "level": ["error"], "cursor": Cursor(1, "l1"), "offset": 20}, True),
    ({"service": ["cart"], "level": ["error"], "descending": False}, True),
    ({"service": ["cart"]}, False),  # no index holds one service's lines with their line ids in order
    ({"level": ["error"]}, False),
    ({"service": ["cart", "pay"], "level": ["error"]}, False),
    ({"service": ["cart"], "level": ["error", "warn"]}, False),
    ({"service": ["cart"], "level": ["error"], "namespace": ["shop"]}, False),
    ({"service": ["cart"], "level": ["error"], "pod": ["p-1"]}, False),
    ({"service": ["cart"], "level": ["error"], "trace_id": "t1"}, False),
    ({"service": ["cart"], "level": ["error"], "text": "timeout"}, False),
])
def test_keys_first_only_where_the_index_alone_finds_the_page(fields: dict[str, Any], first: bool) -> None:
    q = query(**fields)
    assert keys_first(q) is first
    sql, _ = search_sql(q)
    assert ("WITH page AS MATERIALIZED" in sql) is first


def test_the_bound_skips_offset_plus_limit_lines_and_falls_back_to_the_range_edge() -> None:
    newest = query(service=["cart"], level=["error"], cursor=Cursor(5_000, "l9"), offset=20)
    sql, args = search_sql(newest)
    assert args == [to_datetime(newest.from_ns), to_datetime(newest.to_ns), "cart", "error", to_datetime(5_000),
                    "l9", 120, 101, 20]
    assert "ORDER BY time DESC LIMIT 1 OFFSET $7" in sql and "time >= coalesce((SELECT" in sql
    assert sql.endswith("), $1)) SELECT time, line_id, trace_id, service, level, message, namespace, pod, container, "
                        "node, attributes, tags FROM page ORDER BY time DESC, line_id DESC LIMIT $8 OFFSET $9")
    oldest, _ = search_sql(query(service=["cart"], level=["error"], descending=False))
    assert "ORDER BY time ASC LIMIT 1 OFFSET $5" in oldest and "time <= coalesce((SELECT" in oldest
    assert "), $2)) SELECT" in oldest and oldest.endswith("ORDER BY time ASC, line_id ASC LIMIT $6 OFFSET $7")
