"""The same queries through the API over both backends, PostgreSQL and Elasticsearch/OpenSearch
(noida-db's Elasticsearch API, osmem-server's OpenSearch API), with the same answers, each computed
from the data set the real sinks wrote into every store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.query_stack import BASE_NS, Api, Stores, expected, serve, stores

__all__ = ["stores"]  # the shared fixture, here with OpenSearch too
WITH_OPENSEARCH = True

START = "2025-06-10T08:00:00Z"
END = "2025-06-12T00:00:00Z"


@pytest.fixture(params=["postgres", "elasticsearch", "opensearch"])
async def api(request: pytest.FixtureRequest, stores: Stores) -> AsyncIterator[Api]:
    async for served in serve(stores.settings(request.param)):
        yield served


async def numbers(api: Api, **params: Any) -> list[int]:
    status, body = await api.get("/query", **params)
    assert status == 200, body
    return [line["attributes"]["n"] for line in body["lines"]]


async def all_pages(api: Api, **params: Any) -> list[int]:
    """Follow next_cursor to the end; every page but the last is full."""
    found: list[int] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        status, body = await api.get("/query", **params, **extra)
        assert status == 200, body
        found.extend(line["attributes"]["n"] for line in body["lines"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
        assert body["count"] == int(params["limit"])


async def test_service_filter_pages_by_cursor_through_every_line(api: Api) -> None:
    got = await all_pages(api, service="cart", limit=7, **{"from": START, "to": END})
    assert got == expected(lambda r: r.service == "cart")
    assert len(got) == 100


async def test_levels_and_namespace_combine_across_two_days(api: Api) -> None:
    got = await all_pages(api, level="error,warn", namespace="shop", limit=50, order="asc",
                          **{"from": START, "to": END})
    assert got == expected(lambda r: r.level in ("error", "warn") and r.namespace == "shop", descending=False)
    assert any(n >= 250 for n in got) and any(n < 250 for n in got)


async def test_text_search_matches_words_of_the_message(api: Api) -> None:
    got = await all_pages(api, q="timeout", limit=100, **{"from": START, "to": END})
    assert got == expected(lambda r: "timeout" in r.message)
    assert await numbers(api, q="timeout user3", **{"from": START, "to": END}) == \
        expected(lambda r: "timeout" in r.message and r.message.endswith("user3"))


async def test_time_range_is_half_open_and_page_numbers_work(api: Api) -> None:
    start, end = "2025-06-10T08:10:00Z", "2025-06-10T08:20:00Z"  # lines 60..119
    inside = expected(lambda r: BASE_NS + 600 * 10**9 <= r.time_ns < BASE_NS + 1200 * 10**9)
    assert inside[-1] == 60 and inside[0] == 119
    assert await numbers(api, limit=100, **{"from": start, "to": end}) == inside
    assert await numbers(api, limit=10, page=2, **{"from": start, "to": end}) == inside[10:20]


async def test_default_window_is_the_hour_before_to(api: Api) -> None:
    got = await all_pages(api, limit=500, to="2025-06-10T09:00:00Z")
    assert got == expected(lambda r: BASE_NS <= r.time_ns < BASE_NS + 3600 * 10**9)


async def test_a_trace_comes_back_whole_in_time_order(api: Api) -> None:
    status, body = await api.get("/query/tr-7")
    assert status == 200, body
    assert [line["attributes"]["n"] for line in body["lines"]] == expected(lambda r: r.trace_id == "tr-7", False)
    first = body["lines"][0]
    assert (first["trace_id"], first["service"], first["level"], first["namespace"], first["pod"]) == \
        ("tr-7", "cart", "error", "shop", "shop-0")
    assert first["time"] == "2025-06-10T08:07:00.000042Z" and first["message"] == "order 42 done user2"
    assert body["derived"]["services"] == ["cart", "pay", "auth"] and body["derived"]["errors"] == 1
    assert (await api.get("/query/no-such-trace"))[0] == 404


async def test_trace_id_filter_and_results_identical_in_shape(api: Api) -> None:
    status, body = await api.get("/query", trace_id="tr-3", order="asc", **{"from": START, "to": END})
    assert status == 200
    assert [line["attributes"] for line in body["lines"]] == [
        {"msg": f"order {n} {'timeout' if n % 11 == 0 else 'done'} user{n % 4}", "n": n, "tags": [f"t{n % 3}"]}
        for n in range(18, 24)]
    assert body["lines"][0]["tags"] == ["t0"]
    assert body["lines"][0]["line_id"].endswith(f"-{18 * 100:x}")


@pytest.mark.parametrize(("params", "named", "allowed"), [
    ({"level": "loud"}, "level", "trace, debug, info, warn, error, fatal"),
    ({"limit": "0"}, "limit", "an integer from 1 to 1000"),
    ({"from": "yesterday-ish"}, "from", "RFC 3339"),
    ({"from": "2025-06-10T09:00:00Z", "to": "2025-06-10T08:00:00Z"}, "from", "a time before `to`"),
    ({"from": "2024-01-01T00:00:00Z", "to": END}, "from", "api.max_window"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "cursor", "next_cursor"),
    ({"servce": "cart"}, "servce", "one of service, level"),
    ({"order": "sideways"}, "order", "asc or desc"),
])
async def test_bad_parameters_are_refused_by_name(api: Api, params: dict[str, str], named: str, allowed: str) -> None:
    status, body = await api.get("/query", **params)
    assert status == 400, body
    assert body["parameter"] == named and allowed in body["error"], body
