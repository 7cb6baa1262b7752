"""Query API latency over a large store: p50/p95/p99 of the three queries users wait on.

PostgreSQL: `--lines` (default 5M) lines generated server-side over two days into the sink's schema
(every index), then through the API over HTTP: `/query/{trace_id}` (targets p99 < 20 ms), service +
level over one hour (< 100 ms) and a text search over one hour (< 300 ms). The same queries beside
them on the Elasticsearch backend, written by the real ES sink, over the two in-memory stand-ins
that run here (neither is Elasticsearch; their rows show the backend at some scale, not what a
cluster does):
- noida-db's Elasticsearch API over `--es-lines` (default 50K), 20 requests per query: it scans
  every document for every search (measured: 1.2 s at 20K documents, 4.5 s at 50K, growing with
  the count) and indexes about 1.1K lines/s through the sink, so 5M would take over an hour to load
  and minutes per search;
- osmem-server's OpenSearch API over `--os-lines` (default 500K), 50 requests per query: searches
  stay in milliseconds (a trace lookup 1.6-2.8 ms at 20K-200K documents) but it indexes about 2.3K
  lines/s through the sink on these 2 cores, so 5M would take about 40 minutes to load; 500K keeps
  the whole bench inside `make bench`'s 30 minutes, and `--os-lines 1000000` runs by hand.
Run: `python -m tests.bench.bench_query --out bench/query.json` (`--store DIR` keeps the loaded
PostgreSQL store for the next run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

from commands.broker import EmbeddedBroker, free_port
from commands.local_postgres import LocalPostgres
from core.errors import RetriableError
from core.settings import Settings, load_settings
from query.server import build_app
from sinks.postgres import PostgresSink

DAY0 = "2025-06-10T00:00:00Z"
SPAN_S = 2 * 86400
SERVICES = 20
TARGETS_MS = {"trace": 20.0, "service+level, 1 h": 100.0, "text, 1 h": 300.0}
GENERATE = """
INSERT INTO logs (time, line_id, trace_id, service, level, message, namespace, pod, container, node, attributes, tags)
SELECT '2025-06-10'::timestamptz + g * (interval '1 microsecond' * ($3::bigint * 1000000 / $2::bigint)),
       'l' || g, 't' || (g / 10), 'svc' || ((g / 10) % 20),
       (ARRAY['info','info','info','info','info','info','debug','warn','error','info'])[g % 10 + 1],
       'request ' || g || ' ' || (ARRAY['done','timeout','retry','ok','failed','slow'])[g % 6 + 1]
           || ' user' || (g % 1000),
       'ns' || (g % 5), 'pod-' || (g % 50), 'app', 'node' || (g % 3),
       jsonb_build_object('msg', 'request ' || g, 'n', g, 'user', g % 1000), ARRAY['t' || (g % 7)]
FROM generate_series($1::bigint, least($1::bigint + 499999, $2::bigint)) g
"""


async def load_store(dsn: str, lines: int) -> None:
    """The lines, then what a running sink's maintenance does to days that have ended (these are in
    2025): VACUUM them once (sinks/postgres_schema.vacuum_closed_days), here before the queries
    rather than beside them (autovacuum would otherwise go over the fresh 5M lines while they run)."""
    import asyncpg

    from sinks.postgres_schema import create_partitions, day_of, vacuum_closed_days
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE logs")
        first_ns = 1_749_513_600_000_000_000
        await create_partitions(conn, {day_of(first_ns + d * 86_400 * 10**9) for d in range(3)})
    finally:
        await conn.close()
    loaded = await load_postgres(dsn, lines)
    print(f"  postgres: loaded {lines:,} lines in {loaded:.0f} s", flush=True)
    began = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")  # commits flushed (the bench's server runs synchronous_commit off)
        vacuumed = await vacuum_closed_days(conn)
    finally:
        await conn.close()
    print(f"  postgres: vacuumed {', '.join(vacuumed)} in {time.perf_counter() - began:.0f} s", flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(at(0.50) * 1000, 2), "p95_ms": round(at(0.95) * 1000, 2),
            "p99_ms": round(at(0.99) * 1000, 2), "requests": len(ordered)}


async def load_postgres(dsn: str, lines: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    began = time.perf_counter()
    try:
        for first in range(1, lines + 1, 500_000):
            await conn.execute(GENERATE, first, lines, SPAN_S)
            print(f"  postgres: {min(first + 499_999, lines):,} lines", flush=True)
        await conn.execute("ANALYZE logs")
    finally:
        await conn.close()
    return time.perf_counter() - began


def hour_window(rng: random.Random) -> dict[str, str]:
    hour = rng.randrange(0, SPAN_S // 3600 - 1)
    day, h = divmod(hour, 24)
    return {"from": f"2025-06-{10 + day:02d}T{h:02d}:00:00Z", "to": f"2025-06-{10 + day:02d}T{h:02d}:59:59Z"}


async def measure(settings: Settings, lines: int, requests: int, trace_ids: Callable[[random.Random], str]
                  ) -> dict[str, dict[str, float]]:
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    kinds: dict[str, Callable[[], tuple[str, dict[str, str]]]] = {
        "trace": lambda: (f"/query/{trace_ids(rng)}", {}),
        "service+level, 1 h": lambda: ("/query", {"service": f"svc{rng.randrange(SERVICES)}", "level": "error",
                                                  **hour_window(rng)}),
        "text, 1 h": lambda: ("/query", {"q": rng.choice(["timeout", "failed", "retry"]), **hour_window(rng)}),
    }
    out: dict[str, dict[str, float]] = {}
    try:
        async with ClientSession() as session:
            while (await session.get(url + "/readyz")).status != 200:
                await asyncio.sleep(0.2)
            for kind, make in kinds.items():
                samples = []
                for n in range(requests + 20):
                    path, params = make()
                    began = time.perf_counter()
                    async with session.get(url + path, params=params) as response:
                        body = await response.json()
                        assert response.status == 200 and body.get("lines"), (path, params, body)
                    if n >= 20:  # warm-up requests are not counted
                        samples.append(time.perf_counter() - began)
                out[kind] = percentiles(samples)
    finally:
        await runner.cleanup()
    return out


def show(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Print each backend's rows as soon as they are measured (a later backend may take long)."""
    for row in rows:
        print(f"| {row['backend']:<22} | {row['query']:<20} | {row['lines']:>9,} | {row['p50_ms']:>7.1f} | "
              f"{row['p95_ms']:>7.1f} | {row['p99_ms']:>7.1f} | {row['target_p99_ms']:>6.0f} |", flush=True)
    return rows


async def stored_lines(dsn: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM logs"))
    finally:
        await conn.close()


async def bench(tmp: Path, lines: int, es_lines: int, os_lines: int, requests: int, store: Path | None = None
                ) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    tmp.chmod(0o755)
    postgres = LocalPostgres(store or tmp / "postgres", free_port(), fsync=False).start()
    try:
        settings = load_settings(environ={}, sinks={"postgres": {"dsn": postgres.dsn, "retention": 0}},
                                 api={"backend": "postgres"})
        sink = PostgresSink.from_settings(settings)
        await sink.start()  # schema (and any new migration), today's partitions
        await sink.stop()
        if store is not None and await stored_lines(postgres.dsn) == lines:
            print(f"  postgres: reusing the {lines:,} lines stored in {store}", flush=True)
        else:
            await load_store(postgres.dsn, lines)
        found = await measure(settings, lines, requests, lambda rng: f"t{rng.randrange(1, lines // 10)}")
        rows += show([{"backend": "postgres", "query": kind, "lines": lines, **stats,
                       "target_p99_ms": TARGETS_MS[kind]} for kind, stats in found.items()])
    finally:
        postgres.stop("immediate")
    if es_lines > 0:
        rows += show(await es_rows(tmp, es_lines, min(requests, 20), "noida"))
    if os_lines > 0:
        rows += show(await es_rows(tmp, os_lines, min(requests, 50), "osmem"))
    return {"rows": rows}


async def es_rows(tmp: Path, lines: int, requests: int, server: str) -> list[dict[str, Any]]:
    """The same queries on the Elasticsearch backend over lines written by the real ES sink, on
    noida-db's Elasticsearch API (`server="noida"`) or osmem-server's OpenSearch API (`"osmem"`)."""
    from sinks.elasticsearch import ElasticsearchSink
    from tests.support.servers import osmem_server

    stop: Callable[[], None]
    if server == "noida":
        es_port = free_port()
        noida = EmbeddedBroker(tmp / "noida", free_port(), elasticsearch_port=es_port).start()
        url, mode, stop = f"http://127.0.0.1:{es_port}", "elasticsearch", lambda: noida.stop(kill=True)
    else:
        osmem = osmem_server(tmp).start()
        url, mode, stop = osmem.url, "opensearch", osmem.stop
    try:
        settings = load_settings(environ={}, sinks={"elasticsearch": {"url": url, "index_prefix": "bench",
                                                                      "mode": mode}},
                                 api={"backend": "elasticsearch"})
        sink = ElasticsearchSink.from_settings(settings)
        await sink.start()
        began = time.perf_counter()
        await load_search_store(sink, lines)
        await sink.stop()
        print(f"  {server}: loaded {lines:,} lines in {time.perf_counter() - began:.0f} s", flush=True)
        found = await measure(settings, lines, requests, lambda rng: f"t{rng.randrange(1, lines // 10)}")
        note = {"noida": "noida-db Elasticsearch API, in memory", "osmem": "osmem-server OpenSearch API, in memory"}
        return [{"backend": f"elasticsearch ({server})", "query": kind, "lines": lines, **stats,
                 "target_p99_ms": TARGETS_MS[kind], "note": note[server]} for kind, stats in found.items()]
    finally:
        stop()


async def load_search_store(sink: Any, lines: int, concurrency: int = 2) -> None:
    """The bench's lines through the ES sink's write_batch, `concurrency` bulk requests at a time; a
    batch refused as retriable (a timeout on a busy machine) is written again, as the drain would
    (documents are keyed by line id, so a second write replaces the first)."""
    from agents.drain_runner import SinkRecord, to_sink_lines
    from core.models import ParsedChunk
    from sinks.base import SinkBatch

    step = SPAN_S * 10**9 // lines
    words = ["done", "timeout", "retry", "ok", "failed", "slow"]
    levels = ["info"] * 6 + ["debug", "warn", "error", "info"]

    def batch(first: int) -> SinkBatch:
        parsed = [[0, f"s{first // 100_000}", g, 1_749_513_600_000_000_000 + g * step, f"t{g // 10}",
                   levels[g % 10], f"svc{(g // 10) % 20}",
                   json.dumps({"msg": f"request {g} {words[g % 6]} user{g % 1000}", "n": g}), "stdout"]
                  for g in range(first, min(first + 1000, lines))]
        value = ParsedChunk([{"namespace": "ns0", "pod": "pod-0", "container": "app"}], parsed).encode()
        return SinkBatch("sink.x", 0, to_sink_lines(SinkRecord(0, first, value), "logweave"))

    async def write(first: int) -> None:
        for attempt in range(10):
            try:
                result = await sink.write_batch(batch(first))
                assert not result.permanent and not result.retry, result
                return
            except RetriableError as exc:
                print(f"    batch at {first:,}: {exc}; writing it again", flush=True)
                await asyncio.sleep(min(30, 2 ** attempt))
        raise RuntimeError(f"the batch at line {first:,} was refused 10 times")

    firsts = list(range(0, lines, 1000))
    for group in range(0, len(firsts), concurrency):
        await asyncio.gather(*(write(f) for f in firsts[group:group + concurrency]))
        if (group // concurrency) % 50 == 0:
            print(f"    {min(lines, firsts[group] + 1000 * concurrency):,} lines", flush=True)
    await sink._client.indices.refresh(index="bench-*")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--es-lines", type=int, default=50_000, help="lines in noida-db's Elasticsearch API")
    parser.add_argument("--os-lines", type=int, default=500_000, help="lines in osmem-server's OpenSearch API")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--store", type=Path, default=None,
                        help="keep the PostgreSQL store in this directory and reuse it when it holds --lines lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logweave-bench-query-") as tmp:
        result = asyncio.run(bench(Path(tmp), args.lines, args.es_lines, args.os_lines, args.requests,
                                   args.store))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
