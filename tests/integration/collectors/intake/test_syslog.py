"""Syslog with real senders against a real broker: logger(1) over UDP, TCP with LF framing and with
octet counting (RFC 5424 and 3164), Debian's rsyslog forwarding over TCP and over TLS with a
client certificate that names the tenant, and Debian's syslog-ng relaying in both formats.
Structured data stays as fields; JSON messages are the line."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from commands.broker import EmbeddedBroker, wait_for_port
from core.models import RawChunk
from tests.support.intake import running_intake
from tests.support.polling import wait_for
from tests.support.syslog_senders import TlsFiles, logger_send, logger_send_lines, start_rsyslog, start_syslog_ng


def _docs(seen: list[tuple[RawChunk, list[Any]]]) -> dict[str, tuple[RawChunk, dict[str, Any]]]:
    out = {}
    for chunk, line in seen:
        doc = orjson.loads(line[1])
        out[str(doc["msg"])] = (chunk, doc)
    return out


async def test_logger_over_udp_and_both_tcp_framings(intake_broker: EmbeddedBroker) -> None:
    async with running_intake(intake_broker, syslog_port=True, syslog_linger=0.05) as intake:
        port = intake.settings.intake.syslog_port
        await logger_send(port, "over udp", "--udp", "--rfc5424", "-t", "billing", "-p", "local0.err",
                          "--msgid", "ID9", "--sd-id", "zoo@123", "--sd-param", 'tiger="hungry"')
        await logger_send(port, "bsd over tcp", "--tcp", "--rfc3164", "-t", "cron", "-p", "user.warning")
        await logger_send(port, '{"msg": "json inside", "traceId": "t-77", "level": "debug"}',
                          "--tcp", "--octet-count", "--rfc5424", "-t", "api")
        seen = await intake.wait_lines(3)
    docs = _docs(seen)
    assert set(docs) == {"over udp", "bsd over tcp", "json inside"}
    chunk, udp = docs["over udp"]
    assert chunk.source["transport"] == "udp" and udp["level"] == "error"
    assert udp["syslog"]["app"] == "billing" and udp["syslog"]["msgid"] == "ID9"
    assert udp["syslog"]["sd"]["zoo@123"] == {"tiger": "hungry"} and udp["syslog"]["facility"] == 16
    chunk, bsd = docs["bsd over tcp"]
    assert chunk.source["transport"] == "tcp" and bsd["level"] == "warn" and bsd["syslog"]["app"] == "cron"
    _, js = docs["json inside"]
    assert js["traceId"] == "t-77" and js["level"] == "debug" and js["syslog"]["app"] == "api"
    assert all(doc["time"].endswith("Z") for _, doc in docs.values())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TlsFiles, TlsFiles, trustme.CA]]:
    ca = trustme.CA()
    root = Path(tmp_path_factory.mktemp("tls"))
    files = []
    for name, cert in (("server", ca.issue_cert("127.0.0.1", "localhost")),
                       ("client", ca.issue_cert("edge-router.example", common_name="edge-router"))):
        pem, key = root / f"{name}.pem", root / f"{name}.key"
        cert.private_key_pem.write_to_path(str(key))
        cert.cert_chain_pems[0].write_to_path(str(pem))
        files.append(TlsFiles(root / "ca.pem", pem, key))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    yield files[0], files[1], ca


async def test_rsyslog_forwards_over_tcp_and_over_tls_with_a_client_certificate(
        intake_broker: EmbeddedBroker, tmp_path: Path, tls_files: tuple[TlsFiles, TlsFiles, trustme.CA]) -> None:
    server, client, _ = tls_files
    tenants = [{"name": "network", "tls_client_names": ["edge-router"]}]
    async with running_intake(intake_broker, syslog_port=True, syslog_tls_port=True, syslog_linger=0.05,
                              tenants=tenants, syslog_plain_tenant="lan", tls_cert_file=str(server.cert),
                              tls_key_file=str(server.key), tls_client_ca_file=str(server.ca)) as intake:
        cfg = intake.settings.intake
        plain = start_rsyslog(tmp_path / "plain", cfg.syslog_port)
        secure = start_rsyslog(tmp_path / "tls", cfg.syslog_tls_port, client)
        try:
            for relay in (plain, secure):
                await asyncio.to_thread(wait_for_port, "127.0.0.1", relay.input_port, 30)
            for i in range(3):
                await logger_send(plain.input_port, f"relayed-{i}", "--tcp", "--rfc5424", "-t", "router")
                await logger_send(secure.input_port, f"secured-{i}", "--tcp", "--rfc5424", "-t", "router")
            seen: list[tuple[RawChunk, list[Any]]] = []

            async def arrived() -> bool:
                nonlocal seen
                seen = await intake.lines()
                return len(seen) >= 6

            await wait_for(arrived, timeout=60, what="6 lines relayed by rsyslog",
                           last_seen=lambda: (len(seen), plain.log_tail(), secure.log_tail()))
        finally:
            plain.stop()
            secure.stop()
    docs = _docs(seen)
    assert sorted(docs) == sorted([f"relayed-{i}" for i in range(3)] + [f"secured-{i}" for i in range(3)])
    for message, (chunk, doc) in docs.items():
        expected = ("network", "tls") if message.startswith("secured") else ("lan", "tcp")
        assert (chunk.source["tenant"], chunk.source["transport"]) == expected, message
        assert doc["syslog"]["app"] == "router"


async def test_tls_without_a_client_certificate_is_refused(
        intake_broker: EmbeddedBroker, tls_files: tuple[TlsFiles, TlsFiles, trustme.CA]) -> None:
    server, _, ca = tls_files
    async with running_intake(intake_broker, syslog_tls_port=True, tenants=[{"name": "n", "tls_client_names": ["x"]}],
                              tls_cert_file=str(server.cert), tls_key_file=str(server.key),
                              tls_client_ca_file=str(server.ca)) as intake:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("127.0.0.1", intake.settings.intake.syslog_tls_port,
                                                           ssl=context, server_hostname="localhost")
            writer.write(b"<13>1 - - - - - - never stored\n")
            await writer.drain()
            await reader.readexactly(1)  # the server ends the handshake: no data ever comes back
        assert await intake.lines() == []


async def test_syslog_ng_relays_in_rfc5424_octet_counted_and_rfc3164_lf_framed(
        intake_broker: EmbeddedBroker, tmp_path: Path) -> None:
    async with running_intake(intake_broker, syslog_port=True, syslog_udp=False, syslog_linger=0.05) as intake:
        relay = start_syslog_ng(tmp_path / "syslog-ng", intake.settings.intake.syslog_port)
        try:
            await asyncio.to_thread(wait_for_port, "127.0.0.1", relay.input_port, 30)
            for i in range(3):
                await logger_send(relay.input_port, f"relayed-{i}", "--tcp", "--octet-count", "--rfc5424", "-t", "ng")
            seen: list[tuple[RawChunk, list[Any]]] = []

            async def arrived() -> bool:
                nonlocal seen
                seen = await intake.lines()
                return len(seen) >= 6

            await wait_for(arrived, timeout=60, what="6 lines relayed by syslog-ng (3 per destination)",
                           last_seen=lambda: (len(seen), relay.log_tail()))
        finally:
            relay.stop()
    docs = [orjson.loads(line[1]) for _, line in seen]
    assert sorted(doc["msg"] for doc in docs) == sorted([f"relayed-{i}" for i in range(3)] * 2)
    assert all(doc["syslog"]["app"] == "ng" and doc["level"] == "notice" for doc in docs)
    # the RFC 5424 copy keeps logger's structured data as fields; the RFC 3164 copy has none to keep
    with_sd = sorted(doc["msg"] for doc in docs if doc["syslog"].get("sd", {}).get("timeQuality"))
    assert with_sd == [f"relayed-{i}" for i in range(3)]


async def test_rate_limit_per_source_drops_udp_and_slows_tcp(intake_broker: EmbeddedBroker,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Over `syslog_rate_lines` (per source address), UDP datagrams are dropped, counted and logged;
    TCP lines all arrive, but reading waits for the bucket (counted as slowed)."""
    caplog.set_level(logging.WARNING, "collectors.intake.syslog_server")
    async with running_intake(intake_broker, syslog_port=True, syslog_linger=0.05, syslog_rate_lines=1,
                              syslog_burst_lines=3) as intake:
        port = intake.settings.intake.syslog_port

        def stored() -> float:
            return intake.metric("logweave_intake_lines_total", protocol="syslog")

        def dropped() -> float:
            return intake.metric("logweave_intake_rejections_total", protocol="syslog", reason="rate_limited")

        await logger_send_lines(port, [f"udp {i}" for i in range(20)], "--udp")
        await wait_for(lambda: stored() + dropped() == 20, timeout=30, what="20 UDP lines stored or dropped",
                       last_seen=lambda: (stored(), dropped()))
        assert dropped() >= 10 and stored() >= 3  # the burst passed; sending 20 lines takes far less than 7 s
        assert "over intake.syslog_rate_lines" in caplog.text and "dropped (UDP)" in caplog.text
    async with running_intake(intake_broker, syslog_port=True, syslog_linger=0.05, syslog_rate_lines=20,
                              syslog_burst_lines=5) as intake:
        port = intake.settings.intake.syslog_port
        began = time.monotonic()
        # a steady sender, one line every 10 ms: 0.6 s unlimited; at 20 lines/s after a burst of 5, >= 2.75 s
        await logger_send_lines(port, [f"tcp {i}" for i in range(60)], "--tcp", pace=0.01)
        seen = await intake.wait_lines(60)
        assert time.monotonic() - began >= 2.5
        assert len({line[1] for _, line in seen}) == 60  # all arrive, none dropped
        assert intake.metric("logweave_intake_rejections_total", protocol="syslog", reason="rate_slowed") >= 10
        assert "waited for (TCP reads slowed)" in caplog.text
