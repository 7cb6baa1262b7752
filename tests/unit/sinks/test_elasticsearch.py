"""Pure logic of the Elasticsearch sink: index names, the template, per-item bulk classification."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, PermanentError
from core.settings import ElasticsearchSinkSettings, Settings, load_settings
from sinks.base import SinkBatch, SinkLine
from sinks.elasticsearch import BulkActions, ElasticsearchSink, classify, index_name, index_template

DAY1 = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z

# A bulk response recorded from noida-db (Elasticsearch 8.15 API): created, mapping conflict, create conflict.
RECORDED = orjson.loads(
    b'{"errors": true, "items": [{"index": {"_index": "x-1", "_id": "a", "_version": 1, "result": "created",'
    b' "status": 201}}, {"index": {"error": {"type": "document_parsing_exception", "reason": "[1:12] failed to'
    b' parse field [n] of type [long] in document with id \'b\'. Preview of field\'s value: \'{o=1}\'",'
    b' "caused_by": {"type": "illegal_argument_exception", "reason": "Cannot parse object as number"}},'
    b' "_index": "x-1", "_id": "b", "status": 400}}, {"create": {"error": {"type":'
    b' "version_conflict_engine_exception", "reason": "[a]: version conflict, document already exists'
    b' (current version [1])"}, "_index": "x-1", "_id": "a", "status": 409}}], "took": 0}'
)


def line(n: int, time_ns: int = DAY1) -> SinkLine:
    return SinkLine(f"lid-{n}", "t", time_ns, "info", "svc", b'{"n":1}', n, 0)


def batch(count: int) -> SinkBatch:
    return SinkBatch("sink.elasticsearch", 0, [line(n) for n in range(count)])


def test_daily_index_from_event_time_in_utc_with_configurable_format() -> None:
    assert index_name(ElasticsearchSinkSettings(index_prefix="lw"), DAY1) == "lw-2025.06.10"
    just_before_midnight = 1_749_599_999_999_999_999  # 2025-06-10T23:59:59.999999999Z
    assert index_name(ElasticsearchSinkSettings(index_prefix="lw"), just_before_midnight) == "lw-2025.06.10"
    monthly = ElasticsearchSinkSettings(index_prefix="app", index_date_format="%Y-%m")
    assert index_name(monthly, DAY1) == "app-2025-06"


@settings(max_examples=300, deadline=None)
@given(times=st.lists(st.integers(DAY1 - 3 * 86_400 * 10**9, DAY1 + 3 * 86_400 * 10**9), min_size=1, max_size=40),
       line_id=st.text(), date_format=st.sampled_from(["%Y.%m.%d", "%Y-%m", "%G.%V", "%Y.%m.%d.%H", "%Y%m%d-%H%M",
                                                         "%-d.%m", "%%Y.%j"]))
def test_bulk_actions_are_the_dicts_orjson_makes(times: list[int], line_id: str, date_format: str) -> None:
    """Names kept per day (or per second) are the names of each line's own time, its id escaped as orjson
    escapes it: across midnights, and for fields finer than a day."""
    settings_ = ElasticsearchSinkSettings(index_prefix="lw", index_date_format=date_format)
    actions = BulkActions(settings_)
    for time_ns in times:
        expected = orjson.dumps({"index": {"_index": index_name(settings_, time_ns), "_id": line_id}})
        assert actions.action(time_ns, line_id) == expected


def test_bulk_actions_stay_right_after_the_kept_names_are_cleared() -> None:
    settings_ = ElasticsearchSinkSettings(index_prefix="lw", index_date_format="%Y.%m.%d.%H")
    actions = BulkActions(settings_)
    hours = [DAY1 + n * 3_600 * 10**9 for n in range(5_000)]  # more names than are kept, then the first again
    for time_ns in [*hours, hours[0]]:
        assert actions.action(time_ns, "a") == orjson.dumps({"index": {"_index": index_name(settings_, time_ns),
                                                                       "_id": "a"}})


def test_template_maps_identity_and_kubernetes_fields_as_keywords() -> None:
    template = index_template("lw")
    assert template["index_patterns"] == ["lw-*"]
    props: dict[str, Any] = template["template"]["mappings"]["properties"]
    assert {props[k]["type"] for k in ("traceId", "level", "service")} == {"keyword"}
    meta = props["logweave"]["properties"]
    assert meta["trace"]["type"] == "keyword" and meta["time_ns"]["type"] == "long"
    source = meta["source"]["properties"]
    assert {source[k]["type"] for k in ("namespace", "pod", "pod_uid", "container", "node")} == {"keyword"}


def test_recorded_response_created_rejected_and_conflict_as_written() -> None:
    result = classify(batch(3), RECORDED["items"])
    assert not result.retry
    assert [(f.line.line_id, f.reason) for f in result.permanent] == [("lid-1", "index_rejected")]
    assert "document_parsing_exception" in result.permanent[0].detail
    assert "failed to parse field [n]" in result.permanent[0].detail


def test_429_and_5xx_items_alone_are_retried() -> None:
    items: list[dict[str, Any]] = [
        {"index": {"status": 201}},
        {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
        {"index": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary down"}}},
        {"index": {"status": 200}},
    ]
    result = classify(batch(4), items)
    assert [f.line.line_id for f in result.retry] == ["lid-1", "lid-2"]
    assert result.retry[0].detail.startswith("429 es_rejected_execution_exception")
    assert not result.permanent


def test_batch_limits_are_the_generic_sink_settings() -> None:
    settings = Settings(sinks={"batch_size": 700, "batch_bytes": 2_000_000, "batch_period": 0.5})
    assert ElasticsearchSink.from_settings(settings).batch_limits() == (700, 2_000_000, 0.5)


@pytest.mark.parametrize(("env", "complaint"), [
    ({"API_KEY": "k", "USERNAME": "u"},
     "also set: sinks.elasticsearch.username (LOGWEAVE_SINKS__ELASTICSEARCH__USERNAME)"),
    ({"AWS_SIGV4": "true", "AWS_REGION": "eu-west-1"}, "aws_sigv4 needs mode: opensearch"),
    ({"AWS_SIGV4": "true", "MODE": "opensearch"}, "aws_sigv4 needs aws_region"),
    ({"AWS_SIGV4": "true", "MODE": "opensearch", "AWS_REGION": "r", "USERNAME": "u"}, "unset api_key and username"),
    ({"AWS_ACCESS_KEY_ID": "AKID"}, "aws_access_key_id and aws_secret_access_key go together"),
    ({"CLIENT_CERT_FILE": "/c.pem"}, "client_cert_file is set without client_key_file"),
    ({"SSL_ASSERT_FINGERPRINT": "AB:CD"}, "String should match pattern"),
])
def test_contradictory_security_settings_are_refused_by_name(env: dict[str, str], complaint: str) -> None:
    environ = {f"LOGWEAVE_SINKS__ELASTICSEARCH__{k}": v for k, v in env.items()}
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        load_settings(environ=environ)


def test_certificate_options_reach_the_client() -> None:
    pin = ":".join(["AB"] * 32)
    for mode, expected_pin in (("elasticsearch", "AB" * 32), ("opensearch", bytes([0xAB]) * 32)):
        sink = ElasticsearchSink(ElasticsearchSinkSettings(mode=mode, ssl_assert_fingerprint=pin,  # type: ignore[arg-type]
                                                           client_cert_file=Path("/c.pem"),
                                                           client_key_file=Path("/k.pem")), (1, 1, 1.0))
        options = sink._client_options()
        assert options["ssl_assert_fingerprint"] == expected_pin
        assert (options["client_cert"], options["client_key"]) == ("/c.pem", "/k.pem")


def test_sigv4_without_any_credentials_says_where_they_come_from(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    settings = ElasticsearchSinkSettings(mode="opensearch", aws_sigv4=True, aws_region="eu-west-1")
    with pytest.raises(PermanentError, match="no AWS credentials were found"):
        ElasticsearchSink(settings, (1, 1, 1.0))._client_options()
