"""Reading an HTTP request safely, shared by `POST /v1/logs` and OTLP/HTTP: caller, body, limits.

The body is read in pieces and refused (413) as soon as it passes `max_body_bytes`, whatever
Content-Length claimed; compressed bodies are inflated with a cap (limits.py). Large inflations run
in a thread so the event loop keeps serving other requests.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

from collectors.intake.auth import AuthError, Caller
from collectors.intake.context import IntakeContext
from collectors.intake.limits import CorruptBody, LimitExceeded, UnsupportedEncoding, decode_body

_THREAD_THRESHOLD = 256 * 1024


def error(status: int, message: str, retry_after: float | None = None, **extra: object) -> web.Response:
    headers = {"Retry-After": str(max(1, round(retry_after)))} if retry_after is not None else None
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


class Refused(Exception):
    """A request refused before any record was stored; `response` says why."""

    def __init__(self, response: web.Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def caller_of(request: web.Request, ctx: IntakeContext) -> Caller:
    try:
        return ctx.tenants.bearer(request.headers.get("Authorization"))
    except AuthError as exc:
        response = error(401, str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="logweave"'
        raise Refused(response, "unauthorized") from None


async def read_body(request: web.Request, ctx: IntakeContext, protocol: str) -> bytes:
    cfg = ctx.settings
    if request.content_length is not None and request.content_length > cfg.max_body_bytes:
        raise Refused(error(413, f"body of {request.content_length} bytes is over intake.max_body_bytes "
                                 f"({cfg.max_body_bytes})"), "body_too_large")
    parts: list[bytes] = []
    size = 0
    async for piece in request.content.iter_chunked(64 * 1024):
        size += len(piece)
        if size > cfg.max_body_bytes:
            raise Refused(error(413, f"body is over intake.max_body_bytes ({cfg.max_body_bytes})"),
                          "body_too_large")
        parts.append(piece)
    body = b"".join(parts)
    ctx.metrics.bytes.labels(protocol).inc(len(body))
    encoding = request.headers.get("Content-Encoding", "identity")
    try:
        if len(body) > _THREAD_THRESHOLD and encoding.strip().lower() != "identity":
            return await asyncio.to_thread(decode_body, body, encoding, cfg.max_decoded_bytes)
        return decode_body(body, encoding, cfg.max_decoded_bytes)
    except LimitExceeded as exc:
        raise Refused(error(413, str(exc)), exc.reason) from None
    except UnsupportedEncoding as exc:
        raise Refused(error(415, str(exc)), "unsupported_encoding") from None
    except CorruptBody as exc:
        raise Refused(error(400, str(exc)), "corrupt_body") from None


def per_client_limit(ctx: IntakeContext, protocol: str) -> Any:
    """Middleware: at most `max_connections_per_client` requests in progress per client address (429)."""
    active: Counter[str] = Counter()

    @web.middleware
    async def limit(request: web.Request, handler: Any) -> web.StreamResponse:
        client = request.remote or "?"
        if active[client] >= ctx.settings.max_connections_per_client:
            ctx.metrics.reject(protocol, "too_many_connections")
            return error(429, f"{client} has intake.max_connections_per_client "
                              f"({ctx.settings.max_connections_per_client}) requests in progress", retry_after=1)
        active[client] += 1
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            active[client] -= 1
            if not active[client]:
                del active[client]

    return limit
