"""EtcdSink against a real etcd (Debian's etcd-server): keys, leases, limits, idempotence, auth."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from agents.drain_runner import write_together
from commands.broker import free_port
from core.errors import RetriableError
from core.settings import EtcdSinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.etcd import MAX_TXN_OPS, EtcdSink, split_transactions, trace_prefix, unescape_trace_id
from tests.support.servers import Server, etcd_gateway, etcd_server


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Server]:
    server = etcd_server(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def lines(count: int, trace: str = "t1", size: int = 60, start: int = 0) -> list[SinkLine]:
    return [SinkLine(f"lid{n:06d}", trace, 1_000_000 + (count - n), "info", "svc",
                     orjson.dumps({"n": n, "pad": "x" * size}), n, 0) for n in range(start, start + count)]


class WatchedTransactions:
    """Wraps a sink's gateway calls: each transaction's body as sent, and the most requests open at once.
    `before_send(sent)` may raise to refuse a transaction before it is sent (a fault in front of the client)."""

    def __init__(self, sink: EtcdSink, before_send: Callable[[list[bytes]], None] | None = None) -> None:
        self.sent: list[bytes] = []
        self.open_now = self.most_open = 0
        self._real_call = sink._call_raw
        self._before_send = before_send
        sink._call_raw = self._watched  # type: ignore[method-assign]

    async def _watched(self, path: str, data: bytes) -> dict[str, object]:
        if path != "/v3/kv/txn":
            return await self._real_call(path, data)
        if self._before_send is not None:
            self._before_send(self.sent)
        self.sent.append(data)
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            return await self._real_call(path, data)
        finally:
            self.open_now -= 1


def range_read(url: str, prefix: str, token: str | None = None) -> list[tuple[str, dict[str, object]]]:
    key = prefix.encode()
    end = key[:-1] + bytes([key[-1] + 1])
    body = etcd_gateway(url, "/v3/kv/range", {"key": base64.b64encode(key).decode(),
                                               "range_end": base64.b64encode(end).decode()}, token)
    kvs = body.get("kvs", [])
    assert isinstance(kvs, list)
    return [(base64.b64decode(kv["key"]).decode(), orjson.loads(base64.b64decode(kv["value"]))) for kv in kvs]


async def test_lines_read_back_in_time_order_under_one_shared_lease(etcd: Server) -> None:
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/logs", ttl=3600), (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        result = await sink.write_batch(SinkBatch("sink.etcd", 0, lines(300)))
        assert not result.permanent and not result.retry
        await sink.write_batch(SinkBatch("sink.etcd", 0, lines(300)))  # a replay: same keys, same values
    finally:
        await sink.stop()
    stored = range_read(etcd.url, "/logs/t1/")
    assert len(stored) == 300
    assert [doc["n"] for _, doc in stored] == list(range(299, -1, -1))  # keys sort by event time
    leases = etcd_gateway(etcd.url, "/v3/lease/leases", {})["leases"]
    assert isinstance(leases, list) and len(leases) == 1
    ttl = etcd_gateway(etcd.url, "/v3/lease/timetolive", {"ID": leases[0]["ID"]})
    assert 3600 < int(str(ttl["TTL"])) <= 3600 + 3600


def test_transactions_respect_etcd_limits() -> None:
    groups, too_large = split_transactions(lines(300), "/p")
    assert [len(g) for g in groups] == [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS]
    groups, too_large = split_transactions(lines(40, size=100_000) + lines(1, size=2_000_000, start=99), "/p")
    assert all(sum(len(x.document) for x in g) < 1536 * 1024 for g in groups)
    assert sum(len(g) for g in groups) == 40 and [x.offset for x in too_large] == [99]


async def test_too_large_line_is_a_permanent_failure_the_rest_written(etcd: Server) -> None:
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/big"), (1000, 1 << 24, 1.0))
    await sink.start()
    try:
        batch = lines(5) + lines(1, size=2_000_000, start=5)
        result = await sink.write_batch(SinkBatch("sink.etcd", 0, batch))
    finally:
        await sink.stop()
    assert [(f.line.offset, f.reason) for f in result.permanent] == [(5, "etcd_too_large")]
    assert len(range_read(etcd.url, "/big/")) == 5


async def test_endpoint_list_fails_over_to_a_live_server(etcd: Server) -> None:
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    sink = EtcdSink(EtcdSinkSettings(servers=f"{dead},{etcd.url}", prefix="/fo"), (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        await sink.write_batch(SinkBatch("sink.etcd", 0, lines(3)))
    finally:
        await sink.stop()
    assert len(range_read(etcd.url, "/fo/")) == 3


async def test_user_and_password_are_used(etcd: Server) -> None:
    etcd_gateway(etcd.url, "/v3/auth/user/add", {"name": "root", "password": "s3cret"})
    etcd_gateway(etcd.url, "/v3/auth/user/grant", {"user": "root", "role": "root"})
    etcd_gateway(etcd.url, "/v3/auth/enable", {})
    anonymous = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/auth"), (1000, 1 << 22, 1.0))
    await anonymous.start()
    try:
        with pytest.raises(Exception, match=r"(?i)user|token|permission|auth"):
            await anonymous.write_batch(SinkBatch("sink.etcd", 0, lines(2)))
    finally:
        await anonymous.stop()
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/auth", username="root",
                                     password=SecretStr("s3cret")), (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        await sink.write_batch(SinkBatch("sink.etcd", 0, lines(2)))
    finally:
        await sink.stop()
    token = str(etcd_gateway(etcd.url, "/v3/auth/authenticate", {"name": "root", "password": "s3cret"})["token"])
    assert len(range_read(etcd.url, "/auth/", token)) == 2


async def test_one_lease_per_event_time_bucket_regranted_when_revoked(etcd: Server) -> None:
    hour = 3600 * 10**9
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/b", ttl=60, lease_bucket=3600), (1000, 1 << 22, 1.0))
    early = [SinkLine(f"e{n}", "tb", 5 * hour + n, "info", "s", b'{"n":1}', n, 0) for n in range(50)]
    late = [SinkLine(f"l{n}", "tb", 6 * hour + n, "info", "s", b'{"n":2}', 50 + n, 0) for n in range(50)]
    await sink.start()
    try:
        assert not (await sink.write_batch(SinkBatch("sink.etcd", 0, early + late))).permanent
        leases = etcd_gateway(etcd.url, "/v3/lease/leases", {})["leases"]
        assert isinstance(leases, list) and len(leases) == 2  # two buckets of event time, not 100 leases
        for lease in leases:
            etcd_gateway(etcd.url, "/v3/lease/revoke", {"ID": lease["ID"]})  # deletes their keys too
        assert range_read(etcd.url, "/b/tb/") == []
        result = await sink.write_batch(SinkBatch("sink.etcd", 0, early))  # cached lease unknown: re-granted
        assert not result.permanent and not result.retry
    finally:
        await sink.stop()
    assert len(range_read(etcd.url, "/b/tb/")) == 50


async def test_writers_starting_at_once_on_a_new_bucket_share_one_lease(etcd: Server) -> None:
    """Transactions are encoded as the writers take them, so each writer asks for its transaction's lease:
    the four writers of a batch all need the same new bucket at once and it is granted once."""
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/d", inflight_txns=4), (2000, 1 << 22, 1.0))
    await sink.start()
    try:
        assert not (await sink.write_batch(SinkBatch("sink.etcd", 0, lines(8 * MAX_TXN_OPS)))).permanent
    finally:
        await sink.stop()
    leases = etcd_gateway(etcd.url, "/v3/lease/leases", {})["leases"]
    assert isinstance(leases, list) and len(leases) == 1
    assert len(range_read(etcd.url, "/d/t1/")) == 8 * MAX_TXN_OPS


@pytest.mark.parametrize(("reply", "committed"), [
    (b'{"header": {"revision": "2"}, "succeeded": true, "responses": []}', True),  # spaced, as protojson may
    (b"<html>ok</html>", False),  # some other HTTP server on the endpoint
])
async def test_a_transaction_reply_not_recognised_at_a_glance_is_decoded_and_judged_in_full(
        reply: bytes, committed: bool) -> None:
    """A committed transaction's reply is recognised without decoding it; every other 200 reply is decoded
    as before. The endpoint here is a stand-in HTTP server, not etcd: what is under test is how its reply
    is read."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=b"{}" if request.path == "/v3/maintenance/status" else reply)
    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sink = EtcdSink(EtcdSinkSettings(servers=f"http://127.0.0.1:{port}", prefix="/s"), (1000, 1 << 22, 1.0))
    try:
        await sink.start()
        sink._leases[0] = 7  # granted before: only the transaction's reply is read here
        batch = SinkBatch("sink.etcd", 0, [SinkLine("l1", "t", 1, "info", "s", b"{}", 0, 0)])
        if committed:
            assert not (await sink.write_batch(batch)).permanent
        else:
            with pytest.raises(RetriableError, match="no etcd endpoint answered"):
                await sink.write_batch(batch)
    finally:
        await sink.stop()
        await runner.cleanup()


async def test_trace_key_prefixes_kept_across_batches_stay_bounded(etcd: Server,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace spans batches, so its key prefix is kept for the next one; past the bound the kept prefixes
    are dropped before a batch, and that batch's keys are as right as the first's."""
    monkeypatch.setattr("sinks.etcd.MAX_CACHED_PREFIXES", 3)
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/k"), (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        first = [line for n in range(5) for line in lines(2, trace=f"t{n}", start=10 * n)]
        assert not (await sink.write_batch(SinkBatch("sink.etcd", 0, first))).permanent
        assert len(sink._prefixes) == 5  # kept for the next batch
        assert not (await sink.write_batch(SinkBatch("sink.etcd", 0, lines(2, trace="t9", start=90)))).permanent
        assert set(sink._prefixes) == {"t9"}  # more than the bound: dropped before this batch
    finally:
        await sink.stop()
    assert len(range_read(etcd.url, "/k/")) == 12
    assert [doc["n"] for _, doc in range_read(etcd.url, "/k/t9/")] == [91, 90]  # time order within the trace


async def test_hostile_trace_ids_stay_inside_their_own_prefix(etcd: Server) -> None:
    """Trace ids come from log lines: `a/b/c` must not show up in a prefix read of `a`, and
    `../../x` must stay under the sink's prefix (keys are escaped, one segment per trace)."""
    traces = ["a", "a/b/c", "../../x", "..", "50%2Fx", "line\nbreak"]
    batch = [line for n, trace in enumerate(traces) for line in lines(3, trace=trace, start=10 * n)]
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/esc"), (1000, 1 << 22, 1.0))
    await sink.start()
    try:
        assert not (await sink.write_batch(SinkBatch("sink.etcd", 0, batch))).permanent
    finally:
        await sink.stop()
    everything = range_read(etcd.url, "/")
    assert len(everything) == 18 and all(key.startswith("/esc/") for key, _ in everything)
    for n, trace in enumerate(traces):
        found = range_read(etcd.url, trace_prefix("/esc", trace).decode())
        assert sorted(doc["n"] for _, doc in found) == [10 * n, 10 * n + 1, 10 * n + 2], trace
        assert {unescape_trace_id(key.split("/")[2]) for key, _ in found} == {trace}


async def test_a_batchs_transactions_go_up_inflight_at_once_and_a_retry_sends_only_the_unconfirmed(
        etcd: Server) -> None:
    """A batch of 10 transactions against the real etcd, `inflight_txns` 3: at most 3 requests are open
    at once and 3 are reached. The fifth transaction's request is refused once before it is sent (a fault
    injected in front of the client, as a dropped connection would): the batch fails retriably, and its
    retry sends only the transactions etcd did not confirm, so every line is stored once."""
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/c", inflight_txns=3), (2000, 1 << 22, 1.0))
    failed = False

    def drop_the_fifth(sent: list[bytes]) -> None:
        nonlocal failed
        if len(sent) == 4 and not failed:
            failed = True
            raise RetriableError("injected: the connection dropped")
    txns = WatchedTransactions(sink, drop_the_fifth)
    batch = SinkBatch("sink.etcd", 0, lines(10 * MAX_TXN_OPS))
    await sink.start()
    try:
        with pytest.raises(RetriableError, match="injected"):
            await sink.write_batch(batch)
        first_round = len(txns.sent)
        assert first_round == 9 and txns.most_open == 3  # the other writers went on: only the refused one is left
        assert not (await sink.write_batch(batch)).permanent
        assert len(txns.sent) == 10  # the retry sent the one transaction etcd had not confirmed
    finally:
        await sink.stop()
    stored = range_read(etcd.url, "/c/t1/")
    assert sorted(doc["n"] for _, doc in stored) == list(range(10 * MAX_TXN_OPS))


async def test_batches_written_together_share_the_inflight_transactions(etcd: Server) -> None:
    """The drain writes two etcd batches at once (`concurrent_batches`): against the real etcd, their
    transactions together keep at most `inflight_txns` requests open, reach that many, and store every
    line of both batches."""
    sink = EtcdSink(EtcdSinkSettings(servers=etcd.url, prefix="/two", inflight_txns=3), (2000, 1 << 22, 1.0))
    txns = WatchedTransactions(sink)
    batches = [SinkBatch("sink.etcd", 0, lines(4 * MAX_TXN_OPS, trace=f"b{n}")) for n in range(3)]

    async def write(batch: SinkBatch) -> None:
        assert not (await sink.write_batch(batch)).permanent
    await sink.start()
    try:
        await write_together(batches, write, sink.concurrent_batches)
    finally:
        await sink.stop()
    assert sink.concurrent_batches == 2 and txns.most_open == 3
    for n in range(3):
        assert sorted(doc["n"] for _, doc in range_read(etcd.url, f"/two/b{n}/")) == list(range(4 * MAX_TXN_OPS))
