"""Pure logic of the etcd sink: keys in time order, transaction splitting, lease buckets, TLS wiring."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError, PermanentError
from core.settings import EtcdSinkSettings, Settings, load_settings
from sinks.base import SinkLine
from sinks.etcd import (
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    EtcdSink,
    encode_transactions,
    escape_trace_id,
    line_key,
    split_transactions,
    trace_prefix,
    unescape_trace_id,
)


def line(n: int, time_ns: int, size: int = 10) -> SinkLine:
    return SinkLine(f"id{n}", "trace-1", time_ns, "info", "svc", b"x" * size, n, 0)


def test_keys_sort_by_event_time_within_a_trace() -> None:
    keys = [line_key("/lw/", line(n, t)) for n, t in enumerate([10**18, 5, 10**9])]
    assert keys[1] == b"/lw/trace-1/0000000000000000005-id1"
    assert line_key("/lw", SinkLine("id", "a/b", 5, "info", "s", b"", 0, 0)) == b"/lw/a%2Fb/0000000000000000005-id"
    assert sorted(keys) == [keys[1], keys[2], keys[0]]


def test_transactions_hold_at_most_128_operations() -> None:
    groups, too_large = split_transactions([line(n, n) for n in range(300)], "/p")
    assert [len(g) for g in groups] == [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS] and not too_large


def test_encoded_transactions_are_the_gateway_requests_of_their_lines() -> None:
    """The body encoded once per line equals the request built from dicts (base64 key and value, the
    lease id as a string), and is rebuilt only when a lease id changes."""
    lines = [SinkLine(f"id{n}", f"t/{n % 3}\x01", n * 10**9, "info", "svc", b'{"m":"\xc3\xa9 %d"}' % n, n, 0)
             for n in range(200)]
    txns, too_large = encode_transactions(lines, "/lw", 60 * 10**9)
    assert not too_large and [len(t.lines) for t in txns] == [MAX_TXN_OPS, 200 - MAX_TXN_OPS]
    leases = {0: 7, 1: 8, 2: 9, 3: 10}
    for txn in txns:
        expected = {"compare": [], "success": [
            {"request_put": {"key": base64.b64encode(line_key("/lw", x)).decode(),
                             "value": base64.b64encode(x.document).decode(),
                             "lease": str(leases[x.time_ns // (60 * 10**9)])}}
            for x in txn.lines], "failure": []}
        body = txn.body(leases)
        assert orjson.loads(body) == expected
        assert txn.body(dict(leases)) is body  # same leases: the same bytes, not encoded again
    renewed = txns[0].body({**leases, 0: 99})
    assert b'"lease":"99"' in renewed and b'"lease":"7"' not in renewed


def test_transactions_stay_under_the_request_limit_and_oversized_lines_are_set_apart() -> None:
    big = [line(n, n, size=400 * 1024) for n in range(6)]
    huge = line(99, 99, size=MAX_REQUEST_BYTES)
    groups, too_large = split_transactions(big[:3] + [huge] + big[3:], "/p")
    assert too_large == [huge]
    assert [len(g) for g in groups] == [3, 3]
    assert all(sum(len(x.document) for x in g) < MAX_REQUEST_BYTES for g in groups)


def test_lease_bucket_follows_event_time() -> None:
    sink = EtcdSink(EtcdSinkSettings(lease_bucket=3600), (1, 1, 1.0))
    hour = 3600 * 10**9
    assert sink.lease_bucket(5 * hour) == sink.lease_bucket(6 * hour - 1) == 5
    assert sink.lease_bucket(6 * hour) == 6


def test_settings_reach_the_client(tmp_path: Path) -> None:
    settings = Settings(sinks={"batch_size": 5000, "etcd": {"servers": "http://a:2379, http://b:2379",
                                                             "username": "root", "password": "pw"}})
    sink = EtcdSink.from_settings(settings)
    assert sink.settings.endpoints == ["http://a:2379", "http://b:2379"]
    assert sink.batch_limits()[0] == 10 * MAX_TXN_OPS  # capped: a batch is a few transactions at most
    assert sink.ssl_context() is None
    with pytest.raises(ssl.SSLError):  # the CA file is read: a junk one is refused
        (tmp_path / "ca.pem").write_text("junk")
        EtcdSink(EtcdSinkSettings(servers="https://a:2379", ca_file=tmp_path / "ca.pem"), (1, 1, 1.0)).ssl_context()
    assert isinstance(EtcdSink(EtcdSinkSettings(servers="https://a:2379"), (1, 1, 1.0)).ssl_context(), ssl.SSLContext)


async def test_empty_endpoint_list_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="no server given"):  # refused by the settings model
        EtcdSinkSettings(servers=" , ")
    with pytest.raises(PermanentError, match="servers is empty"):  # and by the sink, should one get through
        await EtcdSink(EtcdSinkSettings.model_construct(servers=" , "), (1, 1, 1.0)).start()


@pytest.mark.parametrize(("trace_id", "segment"), [
    ("plain-id_1.2", "plain-id_1.2"), ("a/b/c", "a%2Fb%2Fc"), ("../../x", "..%2F..%2Fx"), ("..", "%2E%2E"),
    (".", "%2E"), ("50%", "50%25"), ("a\nb\x00", "a%0Ab%00"), ("", ""),
])
def test_trace_ids_become_one_escaped_key_segment(trace_id: str, segment: str) -> None:
    assert escape_trace_id(trace_id) == segment
    assert unescape_trace_id(segment) == trace_id


@given(st.text(), st.text())
def test_no_trace_id_reaches_another_traces_prefix(first: str, second: str) -> None:
    segment = escape_trace_id(first)
    assert "/" not in segment and segment not in (".", "..") and unescape_trace_id(segment) == first
    if first != second:  # a prefix read of one trace never returns a key of another
        assert not line_key("/lw", line_of(second)).startswith(trace_prefix("/lw", first))


def line_of(trace_id: str) -> SinkLine:
    return SinkLine("id", trace_id, 5, "info", "svc", b"{}", 0, 0)


@pytest.mark.parametrize("given_only", ["cert_file", "key_file"])
def test_a_client_certificate_needs_both_files(given_only: str, tmp_path: Path) -> None:
    other = "key_file" if given_only == "cert_file" else "cert_file"
    with pytest.raises(ConfigError, match=rf"sinks\.etcd\.{given_only} .*sinks\.etcd\.{other} is not set"):
        load_settings(environ={f"LOGWEAVE_SINKS__ETCD__{given_only.upper()}": "/etc/etcd/x.pem"})
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    both = load_settings(environ={"LOGWEAVE_SINKS__ETCD__CERT_FILE": str(tmp_path / "c.pem"),
                                  "LOGWEAVE_SINKS__ETCD__KEY_FILE": str(tmp_path / "k.pem")})
    assert both.sinks.etcd.key_file == tmp_path / "k.pem"


async def test_a_password_over_http_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = EtcdSinkSettings(servers="http://127.0.0.1:9,https://127.0.0.1:9", username="root", password="pw")
    for _ in range(2):
        sink = EtcdSink(settings, (1, 1, 1.0))
        with pytest.raises(Exception):  # noqa: B017 - nothing listens; only the warning matters here
            await sink.start()
        await sink.stop()
    warnings = [r.getMessage() for r in caplog.records if "unencrypted" in r.getMessage()]
    assert warnings == ["etcd sink: the password of user 'root' travels unencrypted to http://127.0.0.1:9; "
                        "use https:// (sinks.etcd.servers) with sinks.etcd.ca_file"]
    caplog.clear()
    sink = EtcdSink(EtcdSinkSettings(servers="http://127.0.0.1:9"), (1, 1, 1.0))  # no password: no warning
    sink._warn_plaintext_password()
    assert not caplog.records
