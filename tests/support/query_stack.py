"""One data set written by the real sinks into both stores, and the query API served over either.

The same SinkBatch goes through PostgresSink (a fresh database on the session's PostgreSQL),
ElasticsearchSink (noida-db's Elasticsearch API, which also serves Kafka for the live tail) and,
when asked, ElasticsearchSink in OpenSearch mode (osmem-server), so a query must give the same
answer whichever backend the API reads. `expected()` computes the answer
from the data set itself.

The `stores` and `api` fixtures are shared by the API tests and the web page tests: a module
imports them (`from tests.support.query_stack import api, stores`) and gets its own stores, in a
database named after it; `WITH_OPENSEARCH = True` in a module adds osmem.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, web

from commands.broker import EmbeddedBroker, free_port
from commands.local_postgres import LocalPostgres
from core.models import ParsedChunk
from core.settings import Settings, load_settings
from query.server import build_app
from sinks.base import Sink, SinkBatch
from sinks.elasticsearch import ElasticsearchSink
from sinks.postgres import PostgresSink
from tests.support.postgres import fresh_database
from tests.support.servers import Server, osmem_server

BASE_NS = 1_749_542_400_000_000_000  # 2025-06-10T08:00:00Z
SERVICES = ("cart", "pay", "auth")
COUNT = 300
SOURCE_SHOP = {"kind": "pod", "namespace": "shop", "pod": "shop-0", "container": "app", "node": "n1"}
SOURCE_OPS = {"kind": "pod", "namespace": "ops", "pod": "ops-1", "container": "app", "node": "n2"}


def level_of(n: int) -> str:
    return "error" if n % 7 == 0 else "warn" if n % 5 == 0 else "info"


def time_of(n: int) -> int:
    """A line every 10 s from BASE (lines 250+ the next day), with distinct microseconds."""
    day = 86_400 * 10**9 if n >= 250 else 0
    return BASE_NS + day + n * 10 * 10**9 + n * 1000


@dataclass(frozen=True)
class Row:
    n: int
    time_ns: int
    service: str
    level: str
    namespace: str
    trace_id: str
    message: str


def dataset() -> list[Row]:
    rows = []
    for n in range(COUNT):
        message = f"order {n} {'timeout' if n % 11 == 0 else 'done'} user{n % 4}"
        rows.append(Row(n, time_of(n), SERVICES[n % 3], level_of(n), "shop" if n % 2 == 0 else "ops",
                        f"tr-{n // 6}", message))
    return rows


def chunk_value(rows: list[Row]) -> bytes:
    lines = []
    for row in rows:
        doc = {"msg": row.message, "n": row.n, "tags": [f"t{row.n % 3}"]}
        lines.append([0 if row.namespace == "shop" else 1, f"stream-{row.namespace}", row.n * 100, row.time_ns,
                      row.trace_id, row.level, row.service, orjson.dumps(doc).decode(), "stdout"])
    return ParsedChunk([SOURCE_SHOP, SOURCE_OPS], lines).encode()


def expected(predicate: Callable[[Row], bool], descending: bool = True) -> list[int]:
    """The line numbers a query should return, in the API's order."""
    rows = sorted((r for r in dataset() if predicate(r)), key=lambda r: r.time_ns, reverse=descending)
    return [r.n for r in rows]


@dataclass
class Stores:
    broker: EmbeddedBroker
    es_url: str
    postgres_dsn: str
    opensearch: Server | None = None

    def settings(self, backend: str, token_hashes: list[str] | None = None, **api: Any) -> Settings:
        """Settings of the API over `backend`: postgres, elasticsearch (noida-db) or opensearch (osmem),
        with `token_hashes` as auth.token_hashes."""
        search = {"url": self.es_url, "index_prefix": "lwq"}
        if backend == "opensearch":
            assert self.opensearch is not None
            search = {"url": self.opensearch.url, "index_prefix": "lwq", "mode": "opensearch"}
        return load_settings(environ={}, kafka={"brokers": self.broker.bootstrap},
                             sinks={"enabled": ["postgres", "elasticsearch"],
                                    "postgres": {"dsn": self.postgres_dsn, "retention": 0}, "elasticsearch": search},
                             api={"backend": "postgres" if backend == "postgres" else "elasticsearch", **api},
                             auth={"token_hashes": token_hashes or []})


async def load(stores: Stores) -> None:
    """Write the data set through the real sinks: PostgreSQL, noida-db's Elasticsearch API, and
    osmem's OpenSearch API when it runs."""
    from agents.drain_runner import SinkRecord, to_sink_lines

    rows = dataset()
    lines = [line for first in range(0, COUNT, 100)
             for line in to_sink_lines(SinkRecord(0, first, chunk_value(rows[first:first + 100])), "logweave")]
    sinks: list[Sink] = [PostgresSink.from_settings(stores.settings("postgres")),
                         ElasticsearchSink.from_settings(stores.settings("elasticsearch"))]
    if stores.opensearch is not None:
        sinks.append(ElasticsearchSink.from_settings(stores.settings("opensearch")))
    for sink in sinks:
        await sink.start()
        try:
            result = await sink.write_batch(SinkBatch("sink.x", 0, lines))
            assert (result.permanent, result.retry) == ([], []), result
            if isinstance(sink, ElasticsearchSink):
                await sink._client.indices.refresh(index="lwq-*")
        finally:
            await sink.stop()


def start_stores(workdir: Path, postgres_dsn: str, opensearch: bool = False) -> Stores:
    es_port = free_port()
    broker = EmbeddedBroker(workdir / "noida", free_port(), elasticsearch_port=es_port).start()
    server = osmem_server(workdir).start() if opensearch else None
    stores = Stores(broker, f"http://127.0.0.1:{es_port}", postgres_dsn, server)
    asyncio.run(load(stores))
    return stores


def stop_stores(stores: Stores) -> None:
    if stores.opensearch is not None:
        stores.opensearch.stop()
    stores.broker.stop(kill=True)


@dataclass
class Api:
    url: str
    session: ClientSession
    token: str | None = None

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.get(self.url + path, params={k: str(v) for k, v in params.items()},
                                    headers=headers) as response:
            body = await response.read()
            ctype = response.headers.get("Content-Type", "")
            return response.status, orjson.loads(body) if ctype.startswith("application/json") else body


async def serve(settings: Settings) -> AsyncIterator[Api]:
    """The API on a free loopback port, in this process, until the generator is closed."""
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    session = ClientSession()
    try:
        api = Api(f"http://127.0.0.1:{port}", session)
        from tests.support.polling import wait_for

        async def is_ready() -> bool:
            return (await api.get("/readyz"))[0] == 200

        await wait_for(is_ready, what=f"the query API over {settings.api.backend} to be ready", timeout=30)
        yield api
    finally:
        await session.close()
        await runner.cleanup()


@pytest.fixture(scope="module")
def stores(request: pytest.FixtureRequest, postgres_server: LocalPostgres,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """The data set in every store, once per test module that imports this fixture."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    made = start_stores(tmp_path_factory.mktemp(f"{name}-stores"), fresh_database(postgres_server, name),
                        opensearch=getattr(request.module, "WITH_OPENSEARCH", False))
    try:
        yield made
    finally:
        stop_stores(made)


@pytest.fixture
async def api(stores: Stores) -> AsyncIterator[Api]:
    """The API over the PostgreSQL store, open (no tokens)."""
    async for served in serve(stores.settings("postgres")):
        yield served
