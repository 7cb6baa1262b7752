"""The query web page in a real headless Chromium over the API and PostgreSQL: a filtered search
shows the API's lines and pages on, and a trace shows its lines on a timeline by service with the
error marked. Saves screenshots (test-artifacts/query-search.png, query-trace.png)."""

from __future__ import annotations

import asyncio
import re

from tests.e2e.test_stats_page import ARTIFACTS, render
from tests.support.query_stack import Api, api, expected, stores

__all__ = ["api", "stores"]  # shared fixtures (also used by the API tests)
WINDOW = "from=2025-06-10T08:00:00Z&to=2025-06-12T00:00:00Z"


async def dom(url: str) -> str:
    return (await asyncio.to_thread(render, url, "--dump-dom")).stdout


async def screenshot(url: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    await asyncio.to_thread(render, url, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.exists() and shot.stat().st_size > 10_000


async def test_search_shows_the_apis_lines_and_pages_on(api: Api) -> None:
    url = f"{api.url}/?service=pay&level=error,warn&{WINDOW}&limit=8"
    shown = re.findall(r'<tr data-line-id="([^"]+)" data-level="([^"]+)"', await dom(url))
    status, body = await api.get("/query", service="pay", level="error,warn", limit=8,
                                 **dict(p.split("=") for p in WINDOW.split("&")))
    assert status == 200 and body["next_cursor"]
    assert [lid for lid, _ in shown] == [line["line_id"] for line in body["lines"]]
    assert len(shown) == 8 and {level for _, level in shown} <= {"error", "warn"}
    want = expected(lambda r: r.service == "pay" and r.level in ("error", "warn"))
    assert [line["attributes"]["n"] for line in body["lines"]] == want[:8]
    second = re.findall(r'<tr data-line-id="([^"]+)"', await dom(f"{url}&cursor={body['next_cursor']}"))
    _, page2 = await api.get("/query", service="pay", level="error,warn", limit=8, cursor=body["next_cursor"],
                             **dict(p.split("=") for p in WINDOW.split("&")))
    assert second == [line["line_id"] for line in page2["lines"]] and not set(second) & {lid for lid, _ in shown}
    await screenshot(url, "query-search.png")


async def test_bad_filter_is_shown_as_the_apis_error(api: Api) -> None:
    page = await dom(f"{api.url}/?level=loud")
    assert 'class="err"' in page and "parameter level" in page


async def test_trace_view_puts_lines_on_lanes_by_service_with_errors_marked(api: Api) -> None:
    page = await dom(f"{api.url}/?trace=tr-7")
    lanes = re.findall(r'data-lane="([^"]+)"', page)
    assert lanes == ["cart", "pay", "auth"]
    marks = re.findall(r'class="mark (\w+)" style="left:([\d.]+)%"', page)
    assert len(marks) == 6
    assert [level for level, _ in marks].count("error") == 1 and marks[0][0] == "error"  # line 42
    positions = [float(left) for _, left in marks]
    assert positions[0] == 0.0 and max(positions) == 100.0
    assert "https://" not in page
    await screenshot(f"{api.url}/?trace=tr-7", "query-trace.png")
