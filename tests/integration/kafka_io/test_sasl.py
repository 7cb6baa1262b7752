"""SASL toward Kafka with Logweave's own clients (publisher, topic admin, range reader).

No broker here verifies SASL credentials: noida-db accepts any PLAIN user and password and offers
no SCRAM. So PLAIN negotiation is checked against noida-db itself (the client logs in; the broker
cannot tell us whether the password was right), and SCRAM-SHA-256/512 (also for a faust worker), OAUTHBEARER and
the refusal of bad credentials against KafkaFront (tests/support/kafka_front.py), a SASL-checking front of ours
that runs the broker side of the exchange and then pipes to noida-db.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from commands.broker import EmbeddedBroker, free_port
from core.errors import ConfigError
from core.models import RawChunk, make_raw_line
from core.settings import Settings, load_settings
from core.topics import RAW
from kafka_io.publisher import ChunkPublisher
from kafka_io.range_reader import range_consumer, read_range
from kafka_io.topic_admin import ensure_topics, prepare_worker_topics
from tests.support.kafka import start_broker
from tests.support.kafka_front import KafkaFront
from tests.support.polling import wait_for
from tests.support.processes import wait_http_ok_in_thread, worker

USERS = {"alice": "correct horse"}


@pytest.fixture(scope="module")
def noida(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = start_broker(tmp_path_factory.mktemp("sasl") / "broker")
    try:
        yield broker
    finally:
        broker.stop(kill=True)


@pytest.fixture(scope="module")
def front(noida: EmbeddedBroker) -> Iterator[KafkaFront]:
    checking = KafkaFront(noida.kafka_port, users=USERS, tokens={"token-of-the-day"}).start()
    try:
        yield checking
    finally:
        checking.stop()


def sasl_settings(bootstrap: str, mechanism: str, **security: str) -> Settings:
    env = {"LOGWEAVE_KAFKA__BROKERS": bootstrap, "LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
           "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": mechanism}
    env.update({f"LOGWEAVE_KAFKA__SECURITY__{k.upper()}": v for k, v in security.items()})
    return load_settings(environ=env)


async def round_trip(settings: Settings, topic: str) -> str:
    """Publish one chunk and read it back, both with `settings`; the line read back."""
    publisher = ChunkPublisher(settings.kafka, topic, 1 << 20)
    await publisher.start()
    try:
        chunk = RawChunk({"kind": "file"}, "s", 1, [make_raw_line(0, f"via {topic}".encode(), "stdout", 1)])
        ack = await (await publisher.publish(chunk))
    finally:
        await publisher.stop()
    consumer = range_consumer(settings)
    await consumer.start()
    try:
        records = [m async for batch in read_range(consumer, topic, ack.partition, ack.offset, ack.offset + 1)
                   for m in batch]
    finally:
        await consumer.stop()
    line: str = RawChunk.decode(records[0].value).lines[0][1]
    return line


async def test_plain_is_negotiated_with_the_embedded_broker(noida: EmbeddedBroker,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    settings = sasl_settings(noida.bootstrap, "PLAIN", username="svc", password="anything")
    with caplog.at_level(logging.INFO, logger="aiokafka.conn"):
        assert await round_trip(settings, "sasl.plain") == "via sasl.plain"
    assert "Authenticated as svc via PLAIN" in caplog.text


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_logs_in_with_the_right_password(front: KafkaFront, tmp_path: Path, mechanism: str) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")  # as a Kubernetes Secret mount may hold it
    settings = sasl_settings(front.bootstrap, mechanism, username="alice", password_file=str(password_file))
    topic = f"sasl.{mechanism.lower()}"
    assert await round_trip(settings, topic) == f"via {topic}"
    assert (mechanism, "alice") in front.logins


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_a_wrong_password_is_one_line_without_the_password(front: KafkaFront, mechanism: str) -> None:
    settings = sasl_settings(front.bootstrap, mechanism, username="alice", password="Tr0ub4dor")
    refusals = len(front.refusals)
    with pytest.raises(ConfigError) as caught:
        await ensure_topics(settings.kafka, ["sasl.never"], timeout=20)
    message = str(caught.value)
    assert f"refused SASL {mechanism} as 'alice'" in message and "Tr0ub4dor" not in message, message
    assert len(front.refusals) > refusals


async def test_oauthbearer_sends_the_token_from_its_file(front: KafkaFront, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("token-of-the-day\n")
    settings = sasl_settings(front.bootstrap, "OAUTHBEARER", oauth_token_file=str(token))
    assert await round_trip(settings, "sasl.oauth") == "via sasl.oauth"
    token.write_text("expired")
    with pytest.raises(ConfigError, match="refused SASL OAUTHBEARER"):
        await ensure_topics(settings.kafka, ["sasl.never"], timeout=20)


@pytest.mark.timeout(180)
async def test_the_faust_worker_logs_in_with_scram(front: KafkaFront, tmp_path: Path) -> None:
    security = {"LOGWEAVE_KAFKA__SECURITY__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "LOGWEAVE_KAFKA__SECURITY__SASL_MECHANISM": "SCRAM-SHA-512",
                "LOGWEAVE_KAFKA__SECURITY__USERNAME": "alice", "LOGWEAVE_KAFKA__SECURITY__PASSWORD": USERS["alice"]}
    env = {"LOGWEAVE_KAFKA__BROKERS": front.bootstrap, **security,
           "LOGWEAVE_KAFKA__TOPIC_PREFIX": "scram.", "LOGWEAVE_WORKER__APP_ID": "logweave-scram",
           "LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / "worker-data"),
           "LOGWEAVE_SINKS__FILE__DIRECTORY": str(tmp_path / "out"), "LOGWEAVE_SINKS__BATCH_PERIOD": "0.2s"}
    settings = load_settings(environ=env)
    await prepare_worker_topics(settings)  # what `logweave prepare` creates
    logins = sum(1 for mechanism, _ in front.logins if mechanism == "SCRAM-SHA-512")
    web_port = free_port()
    process = worker(tmp_path, env, web_port).start()
    try:
        await wait_http_ok_in_thread(f"http://127.0.0.1:{web_port}/readyz", 90, process)
        publisher = ChunkPublisher(settings.kafka, settings.topic(RAW), 1 << 20, create_topics=[])
        await publisher.start()
        try:
            line = make_raw_line(0, b'{"traceId":"t1","msg":"over scram"}', "stdout", 1)
            await (await publisher.publish(RawChunk({"kind": "file"}, "s", 1, [line])))
        finally:
            await publisher.stop()

        def written() -> bool:
            return any(b"over scram" in p.read_bytes() for p in (tmp_path / "out").rglob("*.ndjson"))

        await wait_for(written, timeout=60, what="the line in the file sink, through a worker logged in with SCRAM")
    finally:
        process.stop()
        print(f"--- worker ---\n{process.log_tail(30)}")
    assert sum(1 for mechanism, _ in front.logins if mechanism == "SCRAM-SHA-512") > logins + 1
