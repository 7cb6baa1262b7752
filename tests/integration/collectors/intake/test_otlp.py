"""OTLP logs with the real OpenTelemetry SDK exporters (gRPC and HTTP/protobuf), plus OTLP/JSON and a
gRPC stub for partial success, against a real broker: ids, severity, body, resource and scope land in
the line, k8s attributes in the source, and rejected records are counted in the answer."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal

import aiohttp
import grpc
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from commands.broker import EmbeddedBroker
from tests.support.intake import running_intake
from tests.support.otlp_clients import emit_logs
from tests.support.polling import wait_for

TOKEN = "otel-token"
TENANTS = [{"name": "apps", "token_sha256": [hashlib.sha256(TOKEN.encode()).hexdigest()]}]


@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning")
async def test_sdk_exporters_over_grpc_and_http(intake_broker: EmbeddedBroker) -> None:
    async with running_intake(intake_broker, tenants=TENANTS, otlp_grpc_port=True, otlp_http_port=True) as intake:
        cfg = intake.settings.intake
        grpc_ids = await asyncio.to_thread(emit_logs, "grpc", f"127.0.0.1:{cfg.otlp_grpc_port}",
                                           [f"grpc-{i}" for i in range(6)], TOKEN)
        http_ids = await asyncio.to_thread(emit_logs, "http", f"http://127.0.0.1:{cfg.otlp_http_port}/v1/logs",
                                           [f"http-{i}" for i in range(6)], TOKEN)
        seen = await intake.wait_lines(12)
        assert intake.metric("logweave_intake_lines_total", protocol="otlp_grpc") == 6
        assert intake.metric("logweave_intake_lines_total", protocol="otlp_http") == 6
    docs = {orjson.loads(line[1])["body"]: (chunk, orjson.loads(line[1]), line) for chunk, line in seen}
    assert sorted(docs) == sorted([f"grpc-{i}" for i in range(6)] + [f"http-{i}" for i in range(6)])
    for transport, ids in (("grpc", grpc_ids), ("http", http_ids)):
        for index, (trace_id, span_id) in enumerate(ids):
            chunk, doc, line = docs[f"{transport}-{index}"]
            assert (doc["traceId"], doc["spanId"]) == (trace_id, span_id)
            assert doc["level"] in (("WARN", "WARNING") if index % 2 else ("INFO",))
            assert doc["service"] == "checkout" and doc["attributes"]["order.id"] == index
            assert doc["resource"]["deployment.environment"] == "test" and "service.name" not in doc["resource"]
            assert doc["scope"]["name"] and doc["time"].endswith("Z") and line[3] > 0
            assert chunk.source["tenant"] == "apps" and chunk.source["protocol"] == f"otlp_{transport}"
            assert (chunk.source["namespace"], chunk.source["pod"], chunk.source["container"]) == \
                ("shop", "checkout-7f9", "app")


def _request_with_a_bad_record() -> dict[str, object]:
    return {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                              "scopeLogs": [{"scope": {"name": "json"}, "logRecords": [
                                  {"timeUnixNano": "1764669600000000000", "severityNumber": 17,
                                   "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                                   "body": {"stringValue": "{\"msg\": \"from json\", \"user\": 7}"}},
                                  {"traceId": "abcd", "body": {"stringValue": "short trace id"}}]}]}]}


async def test_partial_success_names_rejected_records_and_keeps_the_rest(intake_broker: EmbeddedBroker) -> None:
    async with running_intake(intake_broker, otlp_grpc_port=True, otlp_http_port=True) as intake:
        cfg = intake.settings.intake
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{cfg.otlp_http_port}/v1/logs",
                                    data=orjson.dumps(_request_with_a_bad_record()),
                                    headers={"Content-Type": "application/json"}) as response:
                assert response.status == 200
                answer = orjson.loads(await response.read())
            assert answer["partialSuccess"]["rejectedLogRecords"] == "1"
            assert "record 1" in answer["partialSuccess"]["errorMessage"]
            async with session.post(f"http://127.0.0.1:{cfg.otlp_http_port}/v1/logs", data=b"\x00garbage",
                                    headers={"Content-Type": "application/x-protobuf"}) as response:
                assert response.status == 400
        request = ExportLogsServiceRequest()
        request.ParseFromString(_as_protobuf(_request_with_a_bad_record()))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cfg.otlp_grpc_port}") as channel:
            reply = await logs_service_pb2_grpc.LogsServiceStub(channel).Export(request)
        assert reply.partial_success.rejected_log_records == 1
        seen = await intake.wait_lines(2)
    for chunk, line in seen:
        doc = orjson.loads(line[1])
        assert doc == {"msg": "from json", "user": 7, "traceId": "5b8efff798038103d269b633813fc60c",
                       "spanId": "eee19b7ec3c1b174", "time": "2025-12-02T10:00:00.000000000Z", "level": "error",
                       "service": "api", "scope": {"name": "json"}}
        assert line[3] == 1764669600000000000 and chunk.source["tenant"] == "anonymous"


def _as_protobuf(doc: dict[str, object]) -> bytes:
    from collectors.intake.otlp_http import parse_request

    return parse_request(orjson.dumps(doc), json=True).SerializeToString()


async def test_grpc_refuses_a_missing_token_and_retries_are_one_stream(intake_broker: EmbeddedBroker) -> None:
    async with running_intake(intake_broker, tenants=TENANTS, otlp_grpc_port=True) as intake:
        request = ExportLogsServiceRequest()
        request.ParseFromString(_as_protobuf(_request_with_a_bad_record()))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{intake.settings.intake.otlp_grpc_port}") as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            try:
                await stub.Export(request)
                raise AssertionError("an export without a token was accepted")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            for _ in range(2):  # an exporter's retry sends the same bytes
                await stub.Export(request, metadata=(("authorization", f"Bearer {TOKEN}"),))
        seen = await intake.wait_lines(2)
    assert len({chunk.stream_id for chunk, _ in seen}) == 1 and [line[0] for _, line in seen] == [0, 0]


async def test_otlp_http_refuses_bad_tokens_and_rate_limits_with_retry_after(intake_broker: EmbeddedBroker) -> None:
    tenants = [{**TENANTS[0], "rate_lines": 0.01, "burst_lines": 1}]  # refills in 100 s: no race with a slow machine
    body = orjson.dumps(_request_with_a_bad_record())
    async with running_intake(intake_broker, tenants=tenants, otlp_http_port=True) as intake:
        url = f"http://127.0.0.1:{intake.settings.intake.otlp_http_port}/v1/logs"
        async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as session:
            async with session.post(url, data=body, headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
            async with session.post(url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 200
            async with session.post(url, data=body.replace(b"from json", b"again"),
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        seen = await intake.wait_lines(1)
    assert [orjson.loads(line[1])["msg"] for _, line in seen] == ["from json"]


async def test_grpc_calls_in_progress_per_client_are_bounded(intake_broker: EmbeddedBroker) -> None:
    """One Export is held waiting for Kafka (broker frozen with SIGSTOP); a second one from the same
    address on another connection is refused at once with RESOURCE_EXHAUSTED (the OTLP exporters retry
    it later) and counted. (On the same connection the stream limit makes the client queue it.)"""
    assert intake_broker.process is not None
    request = ExportLogsServiceRequest()
    request.ParseFromString(_as_protobuf(_request_with_a_bad_record()))
    async with running_intake(intake_broker, otlp_grpc_port=True, max_connections_per_client=1,
                              ack_timeout=3) as intake:
        target = f"127.0.0.1:{intake.settings.intake.otlp_grpc_port}"
        own_connection = [("grpc.use_local_subchannel_pool", 1)]  # not the first channel's connection
        async with grpc.aio.insecure_channel(target) as first, \
                grpc.aio.insecure_channel(target, options=own_connection) as second:
            os.kill(intake_broker.process.pid, signal.SIGSTOP)
            try:
                held = asyncio.ensure_future(logs_service_pb2_grpc.LogsServiceStub(first).Export(request))
                await wait_for(lambda: intake.metric("logweave_intake_bytes_total", protocol="otlp_grpc") > 0,
                               timeout=10, what="the first Export read")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await logs_service_pb2_grpc.LogsServiceStub(second).Export(request)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "max_connections_per_client" in (refused.value.details() or "")
            finally:
                os.kill(intake_broker.process.pid, signal.SIGCONT)
            with contextlib.suppress(grpc.aio.AioRpcError):  # stored, or UNAVAILABLE after ack_timeout
                await held
            reply = await logs_service_pb2_grpc.LogsServiceStub(second).Export(request)  # the slot is free again
        assert reply.partial_success.rejected_log_records == 1
        assert intake.metric("logweave_intake_rejections_total", protocol="otlp_grpc",
                             reason="too_many_connections") == 1
