"""ElasticsearchSink against real API servers: noida-db (Elasticsearch 8 API) and osmem (OpenSearch)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from commands.broker import EmbeddedBroker, free_port
from core.settings import ElasticsearchSinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.elasticsearch import ElasticsearchSink, index_name
from tests.support.servers import Server, osmem_server

DAY1 = 1_749_543_941_000_000_000  # 2025-06-10
DAY2 = DAY1 + 86_400 * 10**9


@pytest.fixture(params=["elasticsearch", "opensearch"])
def search_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "elasticsearch":
        port = free_port()
        noida = EmbeddedBroker(tmp_path / "noida", free_port(), elasticsearch_port=port).start()
        try:
            yield "elasticsearch", f"http://127.0.0.1:{port}"
        finally:
            noida.stop(kill=True)
    else:
        server: Server = osmem_server(tmp_path).start()
        try:
            yield "opensearch", server.url
        finally:
            server.stop()


def lines(count: int, time_ns: int = DAY1, start: int = 0, **fields: Any) -> list[SinkLine]:
    return [SinkLine(f"lid-{n}", f"t{n % 3}", time_ns + n, "info", "svc",
                     orjson.dumps({"n": n, "traceId": f"t{n % 3}", "level": "info", **fields,
                                   "logweave": {"lid": f"lid-{n}", "time_ns": time_ns + n}}), n, 0)
            for n in range(start, start + count)]


async def count(sink: ElasticsearchSink, index: str) -> int:
    client = sink._client
    await client.indices.refresh(index=index)
    reply = await client.count(index=index)
    data = reply.body if hasattr(reply, "body") else reply
    return int(data["count"])


async def read_back(sink: ElasticsearchSink, index: str) -> dict[str, Any]:
    reply = await sink._client.search(index=index, body={"query": {"match_all": {}}, "size": 1000})
    data = reply.body if hasattr(reply, "body") else reply
    return {hit["_id"]: hit["_source"] for hit in data["hits"]["hits"]}


async def test_bulk_daily_indices_idempotent_and_mapping_conflicts(search_server: tuple[str, str]) -> None:
    mode, url = search_server
    settings = ElasticsearchSinkSettings(url=url, mode=mode, index_prefix="lw")  # type: ignore[arg-type]
    sink = ElasticsearchSink(settings, (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        batch = SinkBatch("sink.elasticsearch", 0, lines(50) + lines(10, DAY2, start=50))
        result = await sink.write_batch(batch)
        assert not result.permanent and not result.retry
        day1, day2 = index_name(settings, DAY1), index_name(settings, DAY2)
        assert (day1, day2) == ("lw-2025.06.10", "lw-2025.06.11")
        assert await count(sink, day1) == 50 and await count(sink, day2) == 10
        assert await read_back(sink, "lw-*") == {x.line_id: orjson.loads(x.document) for x in batch.lines}
        await sink.write_batch(batch)  # replay: same _id, no growth
        assert await count(sink, day1) == 50
        conflict = lines(2, start=100, n={"not": "a number"})  # `n` is mapped as a number already
        result = await sink.write_batch(SinkBatch("sink.elasticsearch", 0, conflict + lines(1, start=200)))
        assert [f.reason for f in result.permanent] == ["index_rejected", "index_rejected"]
        assert "pars" in result.permanent[0].detail and not result.retry
        assert await count(sink, day1) == 51
    finally:
        await sink.stop()


def test_auth_and_tls_settings_reach_the_clients(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("unused")
    es = ElasticsearchSink(ElasticsearchSinkSettings(url="https://es:9200", api_key=SecretStr("k3y"), ca_file=ca,
                                                     verify_certs=True), (1, 1, 1.0))
    options = es._client_options()
    assert options["api_key"] == "k3y" and options["ca_certs"] == str(ca) and options["verify_certs"]
    basic = ElasticsearchSink(ElasticsearchSinkSettings(username="elastic", password=SecretStr("pw")), (1, 1, 1.0))
    assert basic._client_options()["basic_auth"] == ("elastic", "pw")
    opensearch = ElasticsearchSink(ElasticsearchSinkSettings(mode="opensearch", username="admin",
                                                             password=SecretStr("pw")), (1, 1, 1.0))
    assert opensearch._client_options()["http_auth"] == ("admin", "pw")
