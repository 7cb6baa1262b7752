"""`POST /v1/logs` and the operational endpoints (`/healthz`, `/readyz`, `/metrics`).

Answers, in the order they are decided:
401 no or unknown token · 413 body, inflated body or record count over a limit · 415 unknown
Content-Encoding · 429 + Retry-After over the token's rate · 503 + Retry-After when Kafka did not
acknowledge (or the buffer is full): nothing of the request is acknowledged and the client retries ·
202 `{"accepted": n, "rejected": 0}` once Kafka acknowledged every line · 400 when some records were
bad: the valid ones are stored first and the answer says how many, and names the first bad record.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collectors.intake.context import IntakeContext
from collectors.intake.delivery import BrokerUnavailable, Overloaded
from collectors.intake.http_body import parse_body
from collectors.intake.http_request import Refused, caller_of, error, per_client_limit, read_body
from collectors.intake.limits import LimitExceeded
from collectors.intake.lines import build_chunk, intake_source, request_id, stream_id
from core.native import native_path

PROTOCOL = "http"
CONTEXT: web.AppKey[IntakeContext] = web.AppKey("intake", IntakeContext)


async def post_logs(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    response = await _post_logs(request, ctx)
    ctx.metrics.requests.labels(PROTOCOL, str(response.status)).inc()
    return response


async def _post_logs(request: web.Request, ctx: IntakeContext) -> web.Response:
    cfg = ctx.settings
    try:
        caller = caller_of(request, ctx)
        try:
            request_key = request_id(request.headers.get("Idempotency-Key"))
        except ValueError as exc:
            raise Refused(error(400, str(exc)), "bad_idempotency_key") from None
        body = await read_body(request, ctx, PROTOCOL)
        try:
            parsed = parse_body(body, request.content_type, cfg.max_records, cfg.max_line_bytes, time.time_ns())
        except LimitExceeded as exc:
            raise Refused(error(413, str(exc)), exc.reason) from None
        wait = ctx.rate_wait(caller, len(parsed.lines)) if parsed.lines else 0
        if wait:
            raise Refused(error(429, f"tenant {caller.tenant!r} is over its rate limit "
                                     f"({caller.rate_lines:g} lines/s)", retry_after=wait), "rate_limited")
    except Refused as refused:
        ctx.metrics.reject(PROTOCOL, refused.reason, example=refused.response.text)  # what the client was told
        return refused.response
    ctx.metrics.reject_records(PROTOCOL, parsed.rejections)
    if parsed.lines:
        sid = stream_id(PROTOCOL, caller.tenant, request_key)
        chunk = build_chunk(intake_source(PROTOCOL, caller.tenant), sid, parsed.lines)
        try:
            await ctx.delivery.store([chunk], PROTOCOL)
        except (BrokerUnavailable, Overloaded) as exc:
            ctx.metrics.reject(PROTOCOL, "unavailable" if isinstance(exc, BrokerUnavailable) else "overloaded",
                               example=str(exc))
            return error(503, f"{exc}; nothing of this request was acknowledged, retry it", cfg.retry_after)
    accepted, rejected = len(parsed.lines), len(parsed.rejections)
    if rejected:
        return error(400, parsed.rejections[0].describe(), accepted=accepted, rejected=rejected)
    return web.json_response({"accepted": accepted, "rejected": 0}, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not ctx.delivery.started:
        return web.json_response({"status": "starting"}, status=503)
    if not ctx.delivery.broker_ok:
        return web.json_response({"status": "kafka did not acknowledge the last chunk or answer the last probe"},
                                 status=503)
    if ctx.delivery.full:
        return web.json_response({"status": "buffer full"}, status=503)
    return web.json_response({"status": "ready", "native": native_path("intake_lines")})


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    response = web.Response(body=generate_latest(ctx.metrics.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


def build_http_app(ctx: IntakeContext) -> web.Application:
    # bodies are read and inflated by http_request.read_body under its limits, never by aiohttp (whose
    # automatic decompression has no cap on the output)
    app = web.Application(client_max_size=ctx.settings.max_body_bytes + 1,
                          handler_args={"auto_decompress": False}, middlewares=[per_client_limit(ctx, PROTOCOL)])
    app[CONTEXT] = ctx
    app.router.add_post("/v1/logs", post_logs)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
