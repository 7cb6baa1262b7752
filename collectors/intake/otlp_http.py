"""OTLP logs over HTTP (`POST /v1/logs` on port 4318), binary protobuf or JSON, gzip or not.

The answer uses the request's encoding. OTLP/JSON writes trace and span ids as hex (not protobuf
JSON's base64), so they are converted before parsing. Errors follow the OTLP/HTTP spec: 400 for an
unreadable body, 401, 429 and 503 (with Retry-After), each with a google.rpc.Status-like body.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import orjson
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collectors.intake.context import IntakeContext
from collectors.intake.delivery import BrokerUnavailable, Overloaded
from collectors.intake.http_request import Refused, caller_of, per_client_limit, read_body
from collectors.intake.otlp_common import RateLimited, export

PROTOCOL = "otlp_http"
CONTEXT: web.AppKey[IntakeContext] = web.AppKey("intake", IntakeContext)
_PROTOBUF = "application/x-protobuf"


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON's hex traceId/spanId -> the base64 protobuf's JSON mapping expects, in place."""
    if isinstance(node, dict):
        for key in ("traceId", "spanId"):
            value = node.get(key)
            if isinstance(value, str) and value:
                with contextlib.suppress(ValueError):  # not hex: left for the parser to refuse
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
        for child in node.values():
            _hex_ids_to_base64(child)
    elif isinstance(node, list):
        for child in node:
            _hex_ids_to_base64(child)


def parse_request(body: bytes, json: bool) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    if json:
        doc = orjson.loads(body)
        _hex_ids_to_base64(doc)
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    else:
        request.ParseFromString(body)
    return request


def _answer(status: int, message: str, json: bool, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after else None
    if json:
        return web.json_response({"code": status, "message": message}, status=status, headers=headers)
    return web.Response(status=status, text=message, headers=headers)


async def post_logs(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    json = request.content_type == "application/json"
    response = await _post_logs(request, ctx, json)
    ctx.metrics.requests.labels(PROTOCOL, str(response.status)).inc()
    return response


async def _post_logs(request: web.Request, ctx: IntakeContext, json: bool) -> web.Response:
    try:
        caller = caller_of(request, ctx)
        body = await read_body(request, ctx, PROTOCOL)
    except Refused as refused:
        ctx.metrics.reject(PROTOCOL, refused.reason)
        return refused.response
    try:
        parsed = parse_request(body, json)
    except (DecodeError, json_format.ParseError, orjson.JSONDecodeError, ValueError) as exc:
        ctx.metrics.reject(PROTOCOL, "bad_request")
        return _answer(400, f"not an OTLP ExportLogsServiceRequest: {exc}", json)
    try:
        answer = await export(ctx, caller, parsed, body, PROTOCOL)
    except RateLimited as exc:
        return _answer(429, str(exc), json, exc.retry_after)
    except (BrokerUnavailable, Overloaded) as exc:
        ctx.metrics.reject(PROTOCOL, "unavailable")
        return _answer(503, f"{exc}; nothing was acknowledged, retry", json, ctx.settings.retry_after)
    if json:
        return web.Response(body=json_format.MessageToJson(answer).encode(), content_type="application/json")
    return web.Response(body=answer.SerializeToString(), content_type=_PROTOBUF)


def build_otlp_http_app(ctx: IntakeContext) -> web.Application:
    app = web.Application(client_max_size=ctx.settings.max_body_bytes + 1, handler_args={"auto_decompress": False},
                          middlewares=[per_client_limit(ctx, PROTOCOL)])
    app[CONTEXT] = ctx
    app.router.add_post("/v1/logs", post_logs)
    return app
