"""Pure logic of the S3 sink: object keys from offsets and event time, classification, limits."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from core.errors import ConfigError, PermanentError, RetriableError
from core.settings import Settings, load_settings
from sinks.base import SinkBatch, SinkLine
from sinks.s3 import S3Sink, object_key, sibling_prefix, split_by_event_time

BASE_NS = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z


def line(offset: int, time_ns: int) -> SinkLine:
    return SinkLine(f"l{offset}", "t", time_ns, "info", "svc", b"{}", offset, 0)


def test_key_uses_first_lines_event_time_and_zero_padded_offsets() -> None:
    batch = SinkBatch("sink.s3", 3, [line(17, BASE_NS), line(18, BASE_NS + 3 * 3600 * 10**9)])
    assert object_key("/lw/", batch) == (
        "lw/dt=2025-06-10/hour=08/sink.s3-3-0000000000000000017-0000000000000000018.ndjson.gz")


def test_same_batch_same_key_whatever_the_clock() -> None:
    batch = SinkBatch("sink.s3", 0, [line(5, BASE_NS), line(9, BASE_NS)])
    assert object_key("p", batch) == object_key("p", SinkBatch("sink.s3", 0, list(batch.lines)))


def test_sibling_prefix_shares_the_first_offset_only() -> None:
    key = object_key("p", SinkBatch("sink.s3", 0, [line(5, BASE_NS), line(9, BASE_NS)]))
    longer = object_key("p", SinkBatch("sink.s3", 0, [line(5, BASE_NS), line(12, BASE_NS)]))
    assert longer.startswith(sibling_prefix(key)) and sibling_prefix(key).endswith("0000000000000000005-")


def test_refusals_are_permanent_and_the_rest_retried() -> None:
    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    slow = ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
    assert isinstance(S3Sink._classify(denied), PermanentError)
    assert isinstance(S3Sink._classify(slow), RetriableError)


def test_batch_limits_flush_by_size_and_age() -> None:
    settings = Settings(sinks={"s3": {"flush_bytes": 1_000_000, "flush_age": 30}})
    max_lines, max_bytes, max_wait = S3Sink.from_settings(settings).batch_limits()
    assert max_lines >= 1_000_000 and (max_bytes, max_wait) == (1_000_000, 30.0)


def test_last_nanosecond_of_an_hour_stays_in_that_hour() -> None:
    last_ns = 1_749_545_999_999_999_999  # 2025-06-10T08:59:59.999999999Z; a float would round it to 09:00
    assert "/hour=08/" in object_key("p", SinkBatch("sink.s3", 0, [line(1, last_ns)]))


def test_a_kms_key_id_needs_kms_encryption() -> None:
    with pytest.raises(ConfigError, match="sse_kms_key_id is set but server_side_encryption is 'AES256'"):
        load_settings(environ={"LOGWEAVE_SINKS__S3__SSE_KMS_KEY_ID": "alias/k",
                               "LOGWEAVE_SINKS__S3__SERVER_SIDE_ENCRYPTION": "AES256"})
    with pytest.raises(ConfigError, match="allowed values"):
        load_settings(environ={"LOGWEAVE_SINKS__S3__SERVER_SIDE_ENCRYPTION": "rot13"})


def test_event_times_outside_1970_to_the_skew_bound_are_refused_per_line() -> None:
    lines = [SinkLine(str(n), "t", t, "info", "svc", b"{}", n, 0) for n, t in enumerate([-1, 0, 100, 101])]
    good, refused = split_by_event_time(lines, max_future_ns=100)
    assert [x.time_ns for x in good] == [0, 100]
    assert [(f.line.time_ns, f.reason) for f in refused] == [(-1, "event_time_out_of_range"),
                                                             (101, "event_time_out_of_range")]
