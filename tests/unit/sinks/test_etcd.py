"""Pure logic of the etcd sink: keys in time order, transaction splitting, lease buckets, TLS wiring."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from core.errors import PermanentError
from core.settings import EtcdSinkSettings, Settings
from sinks.base import SinkLine
from sinks.etcd import MAX_REQUEST_BYTES, MAX_TXN_OPS, EtcdSink, line_key, split_transactions


def line(n: int, time_ns: int, size: int = 10) -> SinkLine:
    return SinkLine(f"id{n}", "trace-1", time_ns, "info", "svc", b"x" * size, n, 0)


def test_keys_sort_by_event_time_within_a_trace() -> None:
    keys = [line_key("/lw/", line(n, t)) for n, t in enumerate([10**18, 5, 10**9])]
    assert keys[1] == b"/lw/trace-1/0000000000000000005-id1"
    assert sorted(keys) == [keys[1], keys[2], keys[0]]


def test_transactions_hold_at_most_128_operations() -> None:
    groups, too_large = split_transactions([line(n, n) for n in range(300)], "/p")
    assert [len(g) for g in groups] == [MAX_TXN_OPS, MAX_TXN_OPS, 300 - 2 * MAX_TXN_OPS] and not too_large


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
