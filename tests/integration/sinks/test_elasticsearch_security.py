"""ElasticsearchSink's transport security against real servers behind an HTTPS front.

noida-db (Elasticsearch 8 API) and osmem-server (OpenSearch API) speak only plain HTTP, so each
runs behind tests/support/tls_front.py, an aiohttp reverse proxy that terminates TLS with trustme
certificates and records what the client sent. Through it, with the real `elasticsearch` and
`opensearch-py` clients: a pinned certificate fingerprint is accepted and a wrong one refused; a
client certificate is presented (and its absence refused) when the front requires one; and SigV4
signing puts AWS4-HMAC-SHA256 headers on every request. No Amazon OpenSearch Service is reachable
from here, so the signature is checked for shape and scope, not verified by AWS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from commands.broker import EmbeddedBroker, free_port
from core.errors import RetriableError
from core.settings import ElasticsearchSinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.elasticsearch import ElasticsearchSink
from tests.support.servers import osmem_server
from tests.support.tls_front import TlsFront, start_tls_front

LIMITS = (100, 1 << 22, 1.0)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Both real servers once per module: mode -> plain-HTTP URL."""
    tmp = tmp_path_factory.mktemp("search")
    port = free_port()
    noida = EmbeddedBroker(tmp / "noida", free_port(), elasticsearch_port=port).start()
    osmem = osmem_server(tmp).start()
    try:
        yield {"elasticsearch": f"http://127.0.0.1:{port}", "opensearch": osmem.url}
    finally:
        osmem.stop()
        noida.stop(kill=True)


@pytest.fixture(params=["elasticsearch", "opensearch"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def front(upstreams: dict[str, str], mode: str, tmp_path: Path) -> AsyncIterator[TlsFront]:
    started = await start_tls_front(upstreams[mode], tmp_path)
    yield started
    await started.close()


def line(n: int) -> SinkLine:
    return SinkLine(f"lid-{n}", "t1", 1_749_543_941_000_000_000 + n, "info", "svc",
                    b'{"n": %d, "traceId": "t1"}' % n, n, 0)


async def write_two(settings: ElasticsearchSinkSettings) -> None:
    sink = ElasticsearchSink(settings, LIMITS)
    await sink.start()
    try:
        result = await sink.write_batch(SinkBatch("sink.elasticsearch", 0, [line(1), line(2)]))
        assert not result.permanent and not result.retry
    finally:
        await sink.stop()


async def test_a_pinned_fingerprint_is_accepted_and_a_wrong_one_refused(front: TlsFront, mode: str) -> None:
    pinned = ElasticsearchSinkSettings(url=front.url, mode=mode, index_prefix="pin",  # type: ignore[arg-type]
                                       ssl_assert_fingerprint=front.fingerprint)
    await write_two(pinned)
    assert any(r.path.startswith("/_bulk") for r in front.seen)
    wrong = pinned.model_copy(update={"ssl_assert_fingerprint": "AB:" * 31 + "CD"})
    before = len(front.seen)
    with pytest.raises(RetriableError, match=r"(?i)fingerprint"):
        await write_two(wrong)
    assert len(front.seen) == before  # refused during the handshake: no request reached the server


async def test_the_client_certificate_is_presented_when_required(upstreams: dict[str, str], mode: str,
                                                                 tmp_path: Path) -> None:
    front = await start_tls_front(upstreams[mode], tmp_path, require_client_cert=True)
    try:
        settings = ElasticsearchSinkSettings(url=front.url, mode=mode, index_prefix="mtls",  # type: ignore[arg-type]
                                             ca_file=front.ca_file, client_cert_file=front.client_cert_file,
                                             client_key_file=front.client_key_file)
        await write_two(settings)
        assert front.seen and all(r.client_subject for r in front.seen)
        without = settings.model_copy(update={"client_cert_file": None, "client_key_file": None})
        before = len(front.seen)
        with pytest.raises(RetriableError):
            await write_two(without)
        assert len(front.seen) == before
    finally:
        await front.close()


async def test_sigv4_signs_every_request_to_amazon_opensearch(upstreams: dict[str, str], tmp_path: Path) -> None:
    front = await start_tls_front(upstreams["opensearch"], tmp_path)
    try:
        settings = ElasticsearchSinkSettings(url=front.url, mode="opensearch", index_prefix="aws",
                                             ca_file=front.ca_file, aws_sigv4=True, aws_region="eu-west-1",
                                             aws_access_key_id="AKIDEXAMPLE",
                                             aws_secret_access_key=SecretStr("wJalrXUtnFEMI/K7MDENG"),
                                             aws_session_token=SecretStr("session-token-1"))
        await write_two(settings)
    finally:
        await front.close()
    assert {r.method for r in front.seen} >= {"PUT", "POST"}
    for request in front.seen:  # the index template and the bulk write, each signed
        authorization = request.headers.get("Authorization", "")
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), authorization
        assert "/eu-west-1/es/aws4_request" in authorization and "Signature=" in authorization
        assert request.headers.get("X-Amz-Security-Token") == "session-token-1"
        assert "X-Amz-Date" in request.headers and "X-Amz-Content-SHA256" in request.headers


async def test_sigv4_takes_credentials_from_the_environment(upstreams: dict[str, str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    front = await start_tls_front(upstreams["opensearch"], tmp_path)
    try:
        await write_two(ElasticsearchSinkSettings(url=front.url, mode="opensearch", index_prefix="awsenv",
                                                  ca_file=front.ca_file, aws_sigv4=True, aws_region="us-east-1",
                                                  aws_service="aoss"))
    finally:
        await front.close()
    assert front.seen and all(r.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFROMENV/")
                              and "/us-east-1/aoss/aws4_request" in r.headers["Authorization"] for r in front.seen)
