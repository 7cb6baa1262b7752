"""`logweave api`: the HTTP query API (aiohttp) over one backend, plus the live tail and the web page.

Stateless: every request is answered from the store (or, for /tail, from Kafka), so any number of
replicas can serve behind one Service. The store connection is retried in the background; until it
answers, /readyz says 503 and queries answer 503, while /healthz stays 200.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.errors import RetriableError
from core.metrics import API_LATENCY, API_REQUESTS, API_TAILS
from core.settings import Settings
from query.auth import auth_middleware
from query.backend import Backend, QueryTimeout, create_backend, derived_summary
from query.openapi import openapi_document
from query.params import BadParameter, parse_log_query, parse_trace_query

log = logging.getLogger(__name__)
PAGE = (Path(__file__).parent / "static" / "index.html").read_bytes()  # read once, never on the event loop
BACKEND: web.AppKey[Backend] = web.AppKey("backend", Backend)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
STARTED: web.AppKey[asyncio.Event] = web.AppKey("started", asyncio.Event)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad parameters -> 400, a store away -> 503, a query over the statement timeout -> 504; counted."""
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    started = time.perf_counter()
    try:
        response = await handler(request)
    except BadParameter as exc:
        response = _json({"error": str(exc), "parameter": exc.name}, 400)
    except QueryTimeout:
        response = _json({"error": "the query ran longer than api.statement_timeout: narrow the time range "
                                   "or add filters (service, level, trace_id)"}, 504)
    except RetriableError as exc:
        response = _json({"error": f"the store is not available: {exc}"}, 503)
    except web.HTTPException as exc:
        API_REQUESTS.labels(route, str(exc.status)).inc()
        raise
    API_REQUESTS.labels(route, str(response.status)).inc()
    API_LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


def _backend(request: web.Request) -> Backend:
    if not request.app[STARTED].is_set():
        raise RetriableError(f"still connecting to the {request.app[SETTINGS].api.backend} store")
    return request.app[BACKEND]


async def query_lines(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    query = parse_log_query(request.query, settings.api)
    page = await _backend(request).search(query)
    return _json({"lines": [line.as_json() for line in page.lines], "count": len(page.lines),
                  "next_cursor": page.next_cursor, "from": query.from_ns, "to": query.to_ns})


async def query_trace(request: web.Request) -> web.Response:
    trace_id = request.match_info["trace_id"]
    backend = _backend(request)
    lines, summary = await backend.trace(trace_id, request.app[SETTINGS].api.max_trace_lines)
    if not lines and summary is None:
        return _json({"error": "no stored line has this trace id", "trace_id": trace_id}, 404)
    return _json({"trace_id": trace_id, "lines": [line.as_json() for line in lines],
                  "summary": summary, "closed": summary is not None, "derived": derived_summary(trace_id, lines)})


async def list_traces(request: web.Request) -> web.Response:
    query = parse_trace_query(request.query, request.app[SETTINGS].api)
    found = await _backend(request).traces(query)
    if found is None:
        return _json({"error": f"the {request.app[SETTINGS].api.backend} backend keeps no closed-trace summaries; "
                               "they are stored by the postgres sink (api.backend: postgres)"}, 501)
    return _json({"traces": found, "count": len(found)})


async def tail_lines(request: web.Request) -> web.StreamResponse:
    from query.tail import tail

    settings = request.app[SETTINGS]
    query = parse_log_query({k: v for k, v in request.query.items() if k not in ("from", "to")}, settings.api)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    API_TAILS.inc()
    idle = 0
    try:
        async for lines in tail(settings, query):
            if request.transport is None or request.transport.is_closing():
                break  # the client went away (checked after every poll, at most 0.5 s apart)
            if lines:
                await response.write(b"".join(b"data: " + orjson.dumps(line.as_json()) + b"\n\n" for line in lines))
                idle = 0
            elif idle % 20 == 0:  # the first batch (live), then every ~10 s idle: keeps proxies from closing
                await response.write(b": live\n\n")
            idle += 1
    except ConnectionResetError:
        pass  # the client went away mid-write
    except LookupError as exc:
        await response.write(b"event: error\ndata: " + orjson.dumps({"error": str(exc)}) + b"\n\n")
    finally:
        API_TAILS.dec()
    return response


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    ok = request.app[STARTED].is_set() and await request.app[BACKEND].ready()
    return _json({"ready": ok, "backend": request.app[SETTINGS].api.backend}, 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


async def openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())


async def page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE, content_type="text/html")


async def _connect(app: web.Application) -> None:
    backend, settings = app[BACKEND], app[SETTINGS]
    delay = 0.5
    while True:
        try:
            await backend.start()
            app[STARTED].set()
            log.info("query api: %s store connected", settings.api.backend)
            return
        except RetriableError as exc:
            log.warning("query api: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def build_app(settings: Settings, backend: Backend | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_and_metrics, auth_middleware(settings.auth.token_hashes)])
    app[SETTINGS] = settings
    app[BACKEND] = backend or create_backend(settings)
    app[STARTED] = asyncio.Event()
    connecting: list[asyncio.Task[None]] = []

    async def on_startup(app: web.Application) -> None:
        connecting.append(asyncio.create_task(_connect(app)))

    async def on_cleanup(app: web.Application) -> None:
        for task in connecting:
            task.cancel()
        await app[BACKEND].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/query", query_lines)
    app.router.add_get("/query/{trace_id}", query_trace)
    app.router.add_get("/traces", list_traces)
    app.router.add_get("/tail", tail_lines)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", page)
    return app


def run_api(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    if not settings.auth.token_hashes:
        log.warning("query api: no auth.token_hashes configured: every route is open to anyone who can reach "
                    "%s:%d", host or settings.api.host, port or settings.api.port)
    web.run_app(build_app(settings), host=host or settings.api.host, port=port or settings.api.port,
                print=lambda text: log.info("query api: %s", text), access_log=None)
