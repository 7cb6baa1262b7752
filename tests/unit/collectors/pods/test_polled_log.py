"""Followed logs read at ticks (polled_log.py): the HTTP/1.1 head and body decoding on any cut of the bytes,
and real follows against the Kubernetes API test server, over HTTP and TLS (a trustme CA, client
certificate), with its error answers, its ends (clean and broken off), and a busy pod read as it writes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
import yaml

from collectors.pods.apiconfig import load_kubeconfig
from collectors.pods.client import ApiStatusError, KubeClient
from collectors.pods.polled_log import (
    BUSY_BYTES,
    BodyDecoder,
    LogStreamBroken,
    PolledLog,
    TickPoller,
    drain_tls,
    parse_head,
)
from core.errors import PermanentError
from core.native import native_module
from tests.support.kube_api import FakeKubeApi, FakePod

INTERVAL = 0.2


def chunked(pieces: list[bytes]) -> bytes:
    """`pieces` as a chunked body, with a chunk extension and a trailer as servers may send them."""
    body = b"".join(b"%x;note=x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return body + b"0\r\nX-Trailer: yes\r\n\r\n"


@pytest.mark.parametrize("seed", range(20))
def test_a_chunked_body_decodes_the_same_however_its_bytes_are_cut(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(1, 300))) for _ in range(40)]
    wire = chunked(pieces)
    cuts = sorted(rng.sample(range(1, len(wire)), rng.randint(1, 60)))
    decoder = BodyDecoder({"transfer-encoding": "chunked"})
    out = b"".join(decoder.feed(wire[start:end]) for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True))
    assert out == b"".join(pieces) and decoder.done


def test_every_single_cut_of_a_chunked_body_decodes_it() -> None:
    wire = chunked([b"2026-12-06T00:00:00Z one\n", b"two\n", b"x" * 1000])
    for cut in range(1, len(wire)):
        decoder = BodyDecoder({"transfer-encoding": "chunked"})
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == b"2026-12-06T00:00:00Z one\ntwo\n" + b"x" * 1000


def decode_all(wire: bytes, cuts: list[int], native: bool) -> tuple[bytes, bool] | str:
    """What a decoder makes of `wire` fed in the pieces `cuts` makes (the error's message if it refuses)."""
    decoder = BodyDecoder({"transfer-encoding": "chunked"}, native=native)
    out = b""
    try:
        for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            out += decoder.feed(wire[start:end])
    except LogStreamBroken as exc:
        return str(exc)
    return out, decoder.done


@pytest.mark.skipif(native_module("pod_lines") is None,
                    reason="the C extension is not built (LOGWEAVE_PURE or no compiler)")
def test_the_c_dechunk_gives_the_references_result_on_any_input() -> None:
    """Well-formed bodies and bodies with a byte changed, inserted or dropped (sizes, CRLFs, extensions,
    sizes with a sign, 0x, 16 digits, tabs), cut anywhere: the C path and the reference agree, body and end,
    or both refuse with the same message (300 seeded cases)."""
    for seed in range(300):
        assert_dechunk_agrees(random.Random(seed))


def assert_dechunk_agrees(rng: random.Random) -> None:
    pieces = [bytes(rng.choice(b"ab\r\n;") for _ in range(rng.randint(0, 80))) for _ in range(rng.randint(1, 12))]
    sizes = [rng.choice(["%x", "%X", " %x", "%x ", "%x\t", "0%x", "+%x", "0x%x", "%x_", "%016x"]) for _ in pieces]
    wire = bytearray(b"".join((size % len(piece)).encode() + rng.choice([b"", b";a=b", b" ;x"]) + b"\r\n" + piece
                              + b"\r\n" for size, piece in zip(sizes, pieces, strict=True) if piece) + b"0\r\n\r\n")
    for _ in range(rng.choice([0, 0, 1, 2])):
        at = rng.randrange(len(wire))
        choice = rng.random()
        if choice < 0.4:
            wire[at] = rng.choice(b"0aZ\r\n; \t")
        elif choice < 0.7:
            wire.insert(at, rng.choice(b"0\r\n;x"))
        else:
            del wire[at]
    cuts = sorted(set(rng.sample(range(1, len(wire)), min(len(wire) - 1, rng.randint(0, 8)))))
    assert decode_all(bytes(wire), cuts, native=True) == decode_all(bytes(wire), cuts, native=False)


@pytest.mark.parametrize(("wire", "problem"), [
    (b"zz\r\nab\r\n", "invalid chunk size"),
    (b"2\r\nabc\r\n", "does not end where its size says"),
    (b"1" * 2000, "exceeds 1024 bytes"),
    (b"-1\r\nab\r\n", "invalid chunk size"),
    (b"0x2\r\nab\r\n", "invalid chunk size"),
])
def test_a_malformed_chunked_body_breaks_the_stream_with_what_is_wrong(wire: bytes, problem: str) -> None:
    with pytest.raises(LogStreamBroken, match=problem):
        BodyDecoder({"transfer-encoding": "chunked"}).feed(wire)


def test_bodies_of_a_length_or_up_to_the_close() -> None:
    sized = BodyDecoder({"content-length": "5"})
    assert sized.feed(b"abc") == b"abc" and not sized.done
    assert sized.feed(b"deXX") == b"de" and sized.done
    until_close = BodyDecoder({})
    assert until_close.until_close and until_close.feed(b"any\r\n") == b"any\r\n"
    with pytest.raises(LogStreamBroken, match="invalid Content-Length"):
        BodyDecoder({"content-length": "-1"})


def test_the_head_is_read_once_whole_and_must_be_http() -> None:
    assert parse_head(b"HTTP/1.1 200 OK\r\nContent-Ty") is None
    answer = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Type: a\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody")
    assert answer is not None and (answer.status, answer.reason, answer.body) == (404, "Not Found", b"body")
    assert answer.headers == {"content-type": "a", "x-a": "1, 2"}
    with pytest.raises(LogStreamBroken, match=r"not an HTTP/1\.1 answer"):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(LogStreamBroken, match="malformed header"):
        parse_head(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")
    with pytest.raises(LogStreamBroken, match="exceed"):
        parse_head(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20000)


# -- real follows ---------------------------------------------------------------------------------------
@pytest.fixture(params=["http", "tls"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[FakeKubeApi, KubeClient]]:
    """The API test server (lines written in random pieces) and a client of it, over HTTP or over TLS with a
    client certificate required and the server's CA trusted from the kubeconfig."""
    context = None
    user: dict[str, object] = {}
    cluster: dict[str, object] = {}
    if request.param == "tls":
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(context)
        authority.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
        client_cert = authority.issue_cert("logweave-pod-collector")
        cluster["certificate-authority-data"] = base64.b64encode(authority.cert_pem.bytes()).decode()
        user["client-certificate-data"] = base64.b64encode(client_cert.cert_chain_pems[0].bytes()).decode()
        user["client-key-data"] = base64.b64encode(client_cert.private_key_pem.bytes()).decode()
    server = await FakeKubeApi().start(ssl_context=context)
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
           "clusters": [{"name": "t", "cluster": {"server": server.url, **cluster}}],
           "users": [{"name": "t", "user": {"token": server.token, **user}}],
           "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t", "namespace": "demo-system"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(doc))
    client = KubeClient(load_kubeconfig([tmp_path / "kubeconfig"]), 8)
    try:
        yield server, client
    finally:
        await client.close()
        await server.stop()


async def followed(server: FakeKubeApi, client: KubeClient, first: str) -> tuple[FakePod, PolledLog]:
    """Pod `p` with `first` in its log, followed at ticks of INTERVAL."""
    pod = server.add_pod("p")
    server.log(pod, "app", [first])
    log = await client.open_log("demo-system", "p", "app", None, False, poll_interval=INTERVAL)
    assert isinstance(log, PolledLog)
    return pod, log


async def read_all(log: PolledLog, until: bytes, timeout: float = 10.0) -> tuple[bytes, list[float | None]]:
    """What the log brings until `until` is in it, and the tick each read was due at."""
    got, ticks = b"", []
    async with asyncio.timeout(timeout):
        while until not in got:
            data = await log.read(1 << 20)
            if not data:
                break
            got += data
            ticks.append(log.polled_tick)
    return got, ticks


async def test_a_followed_log_is_read_at_ticks_and_its_lines_are_due_at_them(
        api: tuple[FakeKubeApi, KubeClient]) -> None:
    server, client = api
    pod, log = await followed(server, client, "before")
    try:
        got, _ = await read_all(log, b"before\n")
        written = []
        for n in range(10):
            written.append(time.monotonic())
            server.log(pod, "app", [f"line {n}"])
            await asyncio.sleep(0.03)
        got, ticks = await read_all(log, b"line 9\n")
        assert [line.split(b" ", 1)[1] for line in got.splitlines()] == [b"line %d" % n for n in range(10)]
        # read at the ticks only: a read per tick the writes spanned (not one per write), each due at its
        # tick, a multiple of the interval, the last one at the tick after the last write (the API test
        # server shares this event loop: its write may come a moment after `log`, as on a loaded machine)
        assert all(tick is not None and abs(tick / INTERVAL - round(tick / INTERVAL)) < 1e-6 for tick in ticks)
        spanned = int((written[-1] - written[0]) / INTERVAL) + 2
        assert len(ticks) <= spanned, f"{len(ticks)} reads for writes spanning {spanned} ticks"
        assert ticks[-1] is not None and 0 <= ticks[-1] - written[-1] <= INTERVAL + 0.25
    finally:
        log.close()


async def test_a_tick_end_says_whether_any_log_was_left_to_its_reader(api: tuple[FakeKubeApi, KubeClient]) -> None:
    """The pod collector sends a tick's batches as the tick ends when its consumers took every log's bytes
    (False here), and waits for the readers' lines when some were left to them or a log is read as its data
    comes (True). A failing callback keeps neither the others nor the next tick from running; an
    unregistered one is called no more."""
    server, client = api
    pod, log = await followed(server, client, "start")
    await read_all(log, b"start\n")
    taken: list[bytes] = []
    ends: list[tuple[bool, bool, bytes]] = []  # (said left to a reader, bytes wait for the reader, consumed)

    def consume(body: bytes, tick: float) -> bool:
        taken.append(body)
        return True

    def failing(for_readers: bool) -> None:
        raise RuntimeError("a broken callback")

    poller = TickPoller.of(INTERVAL)
    forget_failing = poller.on_tick_end(failing)
    forget = poller.on_tick_end(lambda left: ends.append((left, log.for_reader, b"".join(taken))))
    try:
        log.consumer = consume
        server.log(pod, "app", ["taken"])
        async with asyncio.timeout(10):
            while not any(b"taken\n" in consumed for *_, consumed in ends):
                await asyncio.sleep(INTERVAL / 4)
        assert not any(left for left, *_ in ends), "a tick whose bytes its consumer took said readers"
        log.consumer = None
        server.log(pod, "app", ["for the reader"])
        got, _ = await read_all(log, b"for the reader\n")
        assert got.endswith(b"for the reader\n") and b"for the reader" not in b"".join(taken)
        left_to_reader = [left for left, waiting, _ in ends if waiting]
        assert left_to_reader and all(left_to_reader), f"ticks that left bytes to the reader: {left_to_reader}"
        poller.read_as_it_comes(log)  # a busy log: its reader takes each tick's lines, so every tick says so
        seen = len(ends)
        async with asyncio.timeout(10):
            while len(ends) < seen + 2:
                await asyncio.sleep(INTERVAL / 4)
        assert all(left for left, *_ in ends[seen:]), "a tick with a log read as it comes said no readers"
        forget()
        called = len(ends)
        server.log(pod, "app", ["after"])
        await read_all(log, b"after\n")
        await asyncio.sleep(INTERVAL)
        assert len(ends) == called, "an unregistered tick-end callback was still called"
    finally:
        forget_failing()
        log.close()


async def test_an_ended_container_ends_the_response_cleanly_and_a_cut_one_breaks_it(
        api: tuple[FakeKubeApi, KubeClient]) -> None:
    server, client = api
    pod = server.add_pod("p")
    server.log(pod, "app", [f"line {n}" for n in range(300)])
    log = await client.open_log("demo-system", "p", "app", None, False, poll_interval=INTERVAL)
    assert isinstance(log, PolledLog)
    server.terminate(pod, "app")
    got, _ = await read_all(log, b"no such line")
    assert got.count(b"\n") == 300 and await log.read(100) == b""  # the last chunk came: the end
    log.close()
    cut = server.add_pod("q")
    server.log(cut, "app", ["first"])
    log = await client.open_log("demo-system", "q", "app", None, False, poll_interval=INTERVAL)
    assert isinstance(log, PolledLog)
    try:
        await read_all(log, b"first\n")
        server.cut_next(cut, "app", "abort")
        server.log(cut, "app", ["cut in the middle"])
        with pytest.raises((LogStreamBroken, ConnectionError, ssl.SSLError)):
            await read_all(log, b"no such line")
    finally:
        log.close()


async def test_error_answers_are_the_clients_errors(api: tuple[FakeKubeApi, KubeClient]) -> None:
    server, client = api
    with pytest.raises(ApiStatusError, match='pods "missing" not found') as missing:
        await client.open_log("demo-system", "missing", "app", None, False, poll_interval=INTERVAL)
    assert missing.value.status == 404
    server.token = "rotated"  # the client's token no longer valid: refused after one more try
    with pytest.raises(PermanentError, match=r"refused access \(401"):
        await client.open_log("demo-system", "missing", "app", None, False, poll_interval=INTERVAL)


async def test_a_busy_pod_is_read_as_it_writes_and_a_quiet_one_at_ticks_again(
        api: tuple[FakeKubeApi, KubeClient]) -> None:
    server, client = api
    pod, log = await followed(server, client, "start")
    poller = TickPoller.of(INTERVAL)
    try:
        await read_all(log, b"start\n")
        pad = "z" * 200
        reading = False
        for burst in range(20):  # ~4 x BUSY_BYTES a tick for a second
            server.log(pod, "app", [f"b{burst} {n} {pad}" for n in range(4 * BUSY_BYTES // 200 // 5)])
            await asyncio.sleep(INTERVAL / 4)
            reading = reading or poller.reading(log)
            while log.read_nowait(1 << 20):
                pass
        assert reading, "a busy pod was read at ticks only"
        for _ in range(6):  # quiet now: what is left is taken
            await asyncio.sleep(INTERVAL)
            while log.read_nowait(1 << 20):
                pass
        assert not poller.reading(log), "a pod that went quiet is still read as it writes"
        server.log(pod, "app", ["quiet"])
        _, ticks = await read_all(log, b"quiet\n")
        assert ticks[-1] is not None
    finally:
        log.close()


async def test_the_api_servers_certificate_is_verified_unless_the_kubeconfig_says_not_to(tmp_path: Path) -> None:
    """A polled log's TLS is verified by the kubeconfig's CA: an untrusted server is refused before any
    request (its token never sent); `insecure-skip-tls-verify` alone lets it through."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = await FakeKubeApi().start(ssl_context=context)
    server.add_pod("p")

    def client_of(cluster: dict[str, object], name: str) -> KubeClient:
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "t",
               "clusters": [{"name": "t", "cluster": {"server": server.url, **cluster}}],
               "users": [{"name": "t", "user": {"token": server.token}}],
               "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}]}
        (tmp_path / name).write_text(yaml.safe_dump(doc))
        return KubeClient(load_kubeconfig([tmp_path / name]), 4)

    untrusted, skipping = client_of({}, "untrusted"), client_of({"insecure-skip-tls-verify": True}, "skipping")
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusted.open_log("demo-system", "p", "app", None, False, poll_interval=INTERVAL)
        assert server.requests["log"] == 0
        log = await skipping.open_log("demo-system", "p", "app", None, False, poll_interval=INTERVAL)
        assert isinstance(log, PolledLog) and server.requests["log"] == 1
        log.close()
    finally:
        await untrusted.close()
        await skipping.close()
        await server.stop()


async def test_a_credential_with_a_line_break_is_refused_without_printing_it(
        api: tuple[FakeKubeApi, KubeClient]) -> None:
    server, client = api
    server.add_pod("p")
    client.config.credentials._header = {"Authorization": "Bearer secret\r\nX-Injected: 1"}  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="Authorization header") as refused:
        await client.open_log("demo-system", "p", "app", None, False, poll_interval=INTERVAL)
    assert "secret" not in str(refused.value) and server.requests["log"] == 0


def tls_pair() -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.SSLObject, ssl.MemoryBIO]:
    """A client and a server TLS object over memory BIOs, handshaken: (client, what the client reads from,
    server, what the server writes to)."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("api").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    client_in, client_out, server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, client_out, server_hostname="api")
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    client.do_handshake()
    return client, client_in, server, server_out


def test_drain_tls_reads_every_whole_record_and_leaves_a_partial_one_for_later() -> None:
    """drain_tls stops once its BIO holds nothing (no read left to fail), so it must still take every whole
    record, keep a record cut anywhere until the bytes that complete it come, and tell the server's
    close_notify."""
    client, incoming, server, wire = tls_pair()
    assert drain_tls(client, incoming) == (b"", False)  # nothing came (TLS 1.3 session tickets may be read)
    pieces = [b"line %d\n" % n * (n * 900 + 1) for n in range(5)]  # a record each, up to ~8 KB
    records = []
    for piece in pieces:
        server.write(piece)
        records.append(wire.read())
    stream = b"".join(records)
    got, start = b"", 0
    for cut in [*sorted(random.Random(5).sample(range(1, len(stream)), 12)), len(stream)]:
        incoming.write(stream[start:cut])
        start = cut
        plain, closed = drain_tls(client, incoming)
        assert not closed
        got += plain
        assert b"".join(pieces).startswith(got)
    assert got == b"".join(pieces)
    with contextlib.suppress(ssl.SSLWantReadError):
        server.unwrap()  # close_notify
    incoming.write(wire.read())
    assert drain_tls(client, incoming) == (b"", True)
