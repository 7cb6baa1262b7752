"""Query parameters: times in three forms, the default and widest windows, cursors, and refusals."""

from __future__ import annotations

import pytest

from core.settings import ApiSettings
from query.params import BadParameter, Cursor, parse_log_query, parse_time, parse_trace_query

NOW = 1_749_542_400_000_000_000  # 2025-06-10T08:00:00Z
API = ApiSettings()


def test_times_are_rfc3339_epoch_milliseconds_or_a_duration_ago() -> None:
    assert parse_time("from", "2025-06-10T08:00:00Z", NOW) == NOW
    assert parse_time("from", "2025-06-10T10:00:00+02:00", NOW) == NOW
    assert parse_time("from", str(NOW // 1_000_000), NOW) == NOW
    assert parse_time("from", "90m", NOW) == NOW - 5400 * 10**9
    with pytest.raises(BadParameter, match="parameter from = 'soon': allowed: an RFC 3339"):
        parse_time("from", "soon", NOW)


def test_defaults_cover_the_window_before_to_newest_first() -> None:
    query = parse_log_query({}, API, now_ns=NOW)
    assert (query.to_ns - query.from_ns, query.limit, query.descending, query.offset) == (3600 * 10**9, 100, True, 0)
    paged = parse_log_query({"page": "3", "limit": "20", "service": "a, b"}, API, now_ns=NOW)
    assert (paged.offset, paged.service) == (40, ["a", "b"])


@pytest.mark.parametrize(("params", "name"), [
    ({"level": "error,loud"}, "level"), ({"limit": "x"}, "limit"), ({"page": "0"}, "page"),
    ({"page": "2", "cursor": Cursor(1, "a").encode()}, "page"), ({"q": " "}, "q"), ({"service": ","}, "service"),
    ({"from": "1h", "to": "2h"}, "from"), ({"from": "40d"}, "from"), ({"what": "1"}, "what"),
])
def test_each_bad_parameter_is_named(params: dict[str, str], name: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_log_query(params, API, now_ns=NOW)
    assert caught.value.name == name and "allowed:" in str(caught.value)


def test_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    cursor = Cursor(NOW + 123, "abcd-1f")
    assert Cursor.decode(cursor.encode()) == cursor
    assert parse_log_query({"cursor": cursor.encode()}, API, now_ns=NOW).cursor == cursor
    with pytest.raises(BadParameter, match="cursor"):
        Cursor.decode("WzEsMl0")  # [1,2]: a list, but not (time, line id)


def test_trace_query_filters() -> None:
    query = parse_trace_query({"service": "cart", "has_error": "true", "min_duration": "1.5s"}, API, now_ns=NOW)
    assert (query.service, query.has_error, query.min_duration_ms) == ("cart", True, 1500.0)
    for params, name in (({"has_error": "yes"}, "has_error"), ({"min_duration": "long"}, "min_duration"),
                         ({"service": "a,b"}, "service")):
        with pytest.raises(BadParameter, match=f"parameter {name}"):
            parse_trace_query(params, API, now_ns=NOW)
